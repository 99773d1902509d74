// Finding a mail folder over Graph by well-known name, display name or "Parent/Child" path: one way for
// every Graph user of the pack. Well-known names (mailFolder resource, "Use well-known folder names")
// stand wherever a folder id does, in any mailbox language.
import { type CallOptions, type GraphApi, GraphApiError, segment, userPath } from "./graph-api";

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

/** A child folder by display name (null parent: the top of the mailbox); null when there is none. */
export async function childFolderId(
  api: GraphApi,
  mailbox: string,
  parentId: string | null,
  displayName: string,
  call: CallOptions,
): Promise<string | null> {
  const base = `${userPath(mailbox)}/mailFolders`;
  const path = parentId === null ? base : `${base}/${segment(parentId)}/childFolders`;
  let found: { id?: string }[];
  try {
    const page = await api.get<{ value?: { id?: string }[] }>(
      path,
      { $filter: `displayName eq '${displayName.replace(/'/g, "''")}'`, $select: "id,displayName" },
      call,
    );
    found = page?.value ?? [];
  } catch (err) {
    if (!(err instanceof GraphApiError && err.itemNotFound)) throw err;
    found = [];
  }
  const id = found[0]?.id;
  return typeof id === "string" ? id : null;
}

/**
 * Id of a folder given by well-known name (used as is), display name or "Parent/Child" path; null
 * when a part of the path does not exist. `child` looks one level up (a caller may cache it).
 */
export async function folderIdByPath(
  name: string,
  child: (parentId: string | null, displayName: string) => Promise<string | null>,
): Promise<string | null> {
  const parts = name
    .split("/")
    .map((s) => s.trim())
    .filter(Boolean);
  const first = parts[0];
  if (first === undefined) return null;
  let id = WELL_KNOWN_FOLDERS.has(first.toLowerCase()) ? first.toLowerCase() : await child(null, first);
  for (const part of parts.slice(1)) if (id) id = await child(id, part);
  return id;
}
