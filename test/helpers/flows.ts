// Node definitions shared by tests, benches and the demo, as the editor would save them.
import { MAILBOX } from "./tenant";

/** An email-connector with the editor's defaults, watching the stand-in mailbox. */
export function emailConnectorDef(props: Record<string, unknown> = {}): { type: string } & Record<string, unknown> {
  return {
    type: "email-connector",
    name: "",
    transport: "imap",
    graphPoll: 1,
    mailbox: MAILBOX,
    folder: "INBOX",
    take: "unseen",
    onAccepted: "seen",
    moveFolder: "",
    reviewFolder: "",
    redeliverAfter: 600,
    pollInterval: 60,
    maxInMemoryMB: 10,
    caFile: "",
    ...props,
  };
}
