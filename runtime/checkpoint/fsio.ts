// The file operations a checkpoint write needs, as a plain parameter: the node implementation, or a
// test's wrapper that fails like a full disk.
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';

export interface WritableFile {
  write(data: Uint8Array): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface CheckpointIO {
  mkdirp(dir: string): Promise<void>;
  /** Creates a new file; fails if it exists. */
  create(path: string): Promise<WritableFile>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  readdir(dir: string): Promise<string[]>;
  /** Makes renames inside dir durable. */
  syncDir(dir: string): Promise<void>;
}

export const nodeIO: CheckpointIO = {
  async mkdirp(dir) {
    await mkdir(dir, { recursive: true });
  },
  async create(path) {
    const fh = await open(path, 'wx', 0o644);
    return {
      async write(data) {
        let done = 0;
        while (done < data.length) done += (await fh.write(data, done, data.length - done)).bytesWritten;
      },
      sync: () => fh.sync(),
      close: () => fh.close(),
    };
  },
  rename,
  unlink,
  readdir: (dir) => readdir(dir),
  async syncDir(dir) {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};
