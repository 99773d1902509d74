// Graph's well-known folder names (mailFolder resource, "Use well-known folder names"): usable
// wherever a folder id is, in any mailbox language.
/** Graph's well-known folder names: usable wherever a folder id is. */
export const WELL_KNOWN_FOLDERS = new Set([
  "inbox",
  "archive",
  "deleteditems",
  "drafts",
  "junkemail",
  "outbox",
  "sentitems",
  "clutter",
  "conversationhistory",
  "msgfolderroot",
  "scheduled",
]);
