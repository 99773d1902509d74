// One line of the Test button's checklist: what diagnosis.ts reports and mailbox-checks.ts (and the
// shared-folder check) produce. Apart from both, so neither imports the other's types.

export type MailTransport = "imap" | "graph";

/** "skip": not tried, because an earlier line must be fixed first (or nothing was asked). */
export type CheckState = "pass" | "fail" | "warn" | "skip";

export interface DiagnosisCheck {
  id: string;
  label: string;
  state: CheckState;
  detail: string;
  fix?: string;
  /** Commands an administrator runs, filled in with this app's values. */
  commands?: string[];
  /** Only matters for this transport: a failure is a warning when the other one is used. */
  transport?: MailTransport;
}
