/**
 * Durability of files a store is about to record: their bytes on disk before any record names them.
 */
import { open } from 'node:fs/promises';

/** Waits until the file at `path` has its data on disk (fdatasync, on the thread pool). */
export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
