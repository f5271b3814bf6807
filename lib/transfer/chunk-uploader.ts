import type { ChunkInfo } from '../archive/pack.ts';
import type { RenderedCommand } from '../hosts/remote-host.ts';
import type { RemoteScript } from '../remote/shell.ts';

/**
 * How a chunk file reaches the remote incoming dir. The runbook calls `upload` for chunks not
 * already verified there; the uploader leaves the bytes at `partialPath`, and the runbook then
 * checks size and sha256 remotely and gives the chunk its final name. One file per method:
 * sftp.ts, stream.ts, s3.ts.
 */
export interface ChunkUploader {
  readonly method: UploadMethod;
  /** Checks before anything is written (bucket reachable, tools present); throws UserError. */
  preflight?(signal: AbortSignal): Promise<void>;
  /** The uploads are coming (the preflight started): open what they need ahead. Writes nothing. */
  warmUp?(): void;
  /** Called once by the upload step, before any `upload`, with the archive id (first 16 hex of its sha256). */
  begin?(deployId: string, signal: AbortSignal): Promise<void>;
  upload(chunk: ChunkInfo, partialPath: string, signal: AbortSignal): Promise<void>;
  /**
   * Where the method allows: the upload and the remote check (`accept`: size + sha256, then the
   * final name) as one remote command, one round trip per chunk instead of two.
   */
  uploadChecked?(chunk: ChunkInfo, accept: RemoteScript, signal: AbortSignal): Promise<void>;
  /** The command a person would run for `uploadChecked` (`--plan`). */
  renderChecked?(chunkFile: string, accept: RemoteScript): RenderedCommand;
  /** The commands a person would run to do `upload` by hand (`--plan`). */
  render(chunkFile: string, partialPath: string): RenderedCommand[];
  /** After a verified deploy: remove what the method left elsewhere (bucket objects). */
  cleanupAfterSuccess?(): Promise<void>;
  /** A line for the summary when the deploy failed (e.g. objects kept for the resume). */
  noteAfterFailure?(): string | undefined;
  /** Words appended to the upload step's note (e.g. bucket objects uploaded and reused). */
  uploadNote?(): string | undefined;
}

export const UPLOAD_METHODS = ['sftp', 'stream', 's3'] as const;
export type UploadMethod = (typeof UPLOAD_METHODS)[number];
