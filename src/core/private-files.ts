// What the pack keeps on disk (queued alarms with their text, senders and subjects; mailbox progress;
// spooled attachments) is for the Node-RED user only: files 0600 in directories 0700.
import { chmod, type FileHandle, mkdir, stat } from "node:fs/promises";
import { dirname } from "node:path";

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/**
 * Makes `dir` (and any missing parent) private to the user; a directory of ours left readable by an
 * earlier version is closed too. Returns the first directory it created, as mkdir does.
 */
export async function privateDir(dir: string): Promise<string | undefined> {
  const created = await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (created === undefined) {
    const st = await stat(dir);
    // A shared directory (sticky, like /tmp) or another user's is not ours to close.
    const ours = (st.mode & 0o1000) === 0 && st.uid === process.getuid?.();
    if (ours && (st.mode & 0o077) !== 0) await chmod(dir, PRIVATE_DIR_MODE);
  }
  return created;
}

/** The directory a private file goes in. */
export function privateDirOf(path: string): Promise<string | undefined> {
  return privateDir(dirname(path));
}

/** Closes a file of ours that an earlier version created readable by others. */
export async function privateFile(file: FileHandle): Promise<void> {
  if (((await file.stat()).mode & 0o077) !== 0) await file.chmod(PRIVATE_FILE_MODE);
}
