// A CursorStore that keeps the cursor in a file: what a node program would write (the SDK itself
// stays browser-only; this is the whole of it).
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

export class FileCursorStore {
  constructor(path) {
    this.path = path;
  }

  async load() {
    let text;
    try {
      text = await readFile(this.path, "utf8");
    } catch (e) {
      if (e.code === "ENOENT") return undefined;
      throw e;
    }
    const n = Number(text.trim());
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${this.path} holds ${JSON.stringify(text.slice(0, 40))}, not a cursor`);
    return n;
  }

  async save(cursor) {
    await mkdir(dirname(this.path), { recursive: true });
    await writeFile(`${this.path}.tmp`, String(cursor)); // then rename: a crash leaves the old or the new cursor
    await rename(`${this.path}.tmp`, this.path);
  }
}
