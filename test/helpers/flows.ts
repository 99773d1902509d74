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

/** A DC-09 line-driver to a receiver on this machine, over TCP, as the tests use it (short ACK timeout). */
export function dc09LineDriverDef(
  port: number,
  props: Record<string, unknown> = {},
): { type: string } & Record<string, unknown> {
  return {
    type: "line-driver",
    protocol: "dc09",
    host: "127.0.0.1",
    port,
    backupHost: "",
    backupPort: "",
    transport: "tcp",
    receiver: "1",
    prefix: "1",
    format: "auto",
    ackTimeout: 1,
    attempts: 1,
    supervision: 0,
    supervisionAccount: "",
    sendText: true,
    sendTime: false,
    sendLink: false,
    ...props,
  };
}
