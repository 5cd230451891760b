/// <reference types="node" />
// Node-only helpers, imported as "@natter-chat/sdk/node"; never from index.ts, so browser bundles
// stay free of node modules.
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

import type { CursorStore } from "./storage.js";

/** Keeps the cursor in a file (written to a temporary file, then renamed over it). */
export class FileCursorStore implements CursorStore {
  constructor(private readonly path: string) {}

  async load(): Promise<number | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new Error(`natter: load cursor from ${this.path}: ${(e as Error).message}`);
    }
    const n = Number(text.trim());
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`natter: ${this.path} holds ${JSON.stringify(text.slice(0, 40))}, not a cursor`);
    return n;
  }

  async save(cursor: number): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    await writeFile(tmp, String(cursor));
    await rename(tmp, this.path);
  }
}
