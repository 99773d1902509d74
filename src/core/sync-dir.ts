// fsync of a directory: makes a file created or renamed in it survive a crash (the name, not only the bytes).
import { open } from "node:fs/promises";

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
