/**
 * The checkpoint list as the sidebar shows it.
 */

import type { ICheckpoint } from '../types';

/** Newest first, then by name: the checkpoint just saved is on top. */
export function sortCheckpoints(checkpoints: readonly ICheckpoint[]): ICheckpoint[] {
  return [...checkpoints].sort((a, b) => b.time - a.time || a.name.localeCompare(b.name));
}

/** The text of the confirmation dialog for deleting a checkpoint. */
export function deletePrompt(checkpoint: Pick<ICheckpoint, 'name' | 'versions'>): {
  title: string;
  body: string;
} {
  const versions =
    checkpoint.versions === 1 ? 'its only version' : `all ${checkpoint.versions} versions`;
  return {
    title: `Delete the checkpoint “${checkpoint.name}”?`,
    body: `This deletes ${versions} from disk. A resumable run using it starts over.`
  };
}
