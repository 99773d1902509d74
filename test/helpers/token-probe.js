// A test-only user of o365-oauth-config: on input it asks for a token (or reports one as
// rejected), like the email-connector will. Registered only by tests.
module.exports = (RED) => {
  function TokenProbe(def) {
    RED.nodes.createNode(this, def);
    const config = RED.nodes.getNode(def.config);
    config.register(this, "outlook");
    this.on("input", async (msg, send, done) => {
      try {
        const token =
          msg.rejected === undefined
            ? await config.getToken("outlook", "IMAP.AccessAsApp")
            : await config.renewAfterRejection("outlook", msg.rejected, "IMAP.AccessAsApp");
        this.status({ fill: "green", shape: "dot", text: "token ok" });
        send({ ...msg, payload: token.token });
        done();
      } catch (err) {
        done(err);
      }
    });
    this.on("close", () => config.deregister(this));
  }
  RED.nodes.registerType("token-probe", TokenProbe);
};
