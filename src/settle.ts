// How an email keeps its identity through a flow and is settled at the end of it:
// `msg.emailRef` = { connector, uidValidity, uid, messageId } is plain data (survives
// Node-RED's message cloning); whoever finishes with the email (line-driver, data-map, or
// the flow sending the message back into the connector) settles it through the connector.
import type { Node, NodeAPI } from "node-red";
import type { DeliveryClearance, EmailRef, Outcome } from "./core/watch/watcher";

export type { DeliveryClearance };

export interface EmailRefInMsg extends EmailRef {
  /** Node id of the email-connector that emitted the email. */
  connector: string;
}

export interface EmailConnectorNode extends Node {
  settle(ref: EmailRef, outcome: Outcome): Promise<boolean>;
  /** Present when the connector shares its mailbox with other gateways (shared mode). */
  shared?: SharedConnector;
}

/**
 * Shared mode: an email leaves its claim folder only when its alarm was ACKed. The line-driver
 * calls hold() once the alarm is durable in its outbox (instead of settling "accepted"), asks
 * mayDeliver() before each transmission, and settles "accepted" through settle() on the ACK.
 */
export interface SharedConnector {
  hold(ref: EmailRef): Promise<boolean>;
  mayDeliver(ref: EmailRef): DeliveryClearance;
}

const OUTCOMES: readonly Outcome[] = ["accepted", "rejected", "retry"];

/** Reads `msg.emailRef` and `msg.settle` (default "accepted"); undefined when the message has no email identity. */
export function settlementOf(msg: object): { ref: EmailRefInMsg; outcome: Outcome } | undefined {
  const m = msg as { emailRef?: Partial<EmailRefInMsg>; settle?: unknown };
  const ref = m.emailRef;
  if (!ref || typeof ref.connector !== "string" || typeof ref.uid !== "number" || typeof ref.uidValidity !== "string") {
    return undefined;
  }
  const outcome = OUTCOMES.includes(m.settle as Outcome) ? (m.settle as Outcome) : "accepted";
  return {
    ref: { connector: ref.connector, uid: ref.uid, uidValidity: ref.uidValidity, messageId: ref.messageId ?? null },
    outcome,
  };
}

/** For nodes downstream (data-map, line-driver): settle the email a message came from, if any. */
export async function settleEmail(RED: NodeAPI, msg: object, outcome: Outcome): Promise<boolean> {
  const settlement = settlementOf(msg);
  if (!settlement) return false;
  const connector = RED.nodes.getNode(settlement.ref.connector) as EmailConnectorNode | null;
  if (!connector?.settle) return false;
  return connector.settle(settlement.ref, outcome);
}
