/**
 * Where a client keeps its cursor between runs: the seq of the last event it handed to the
 * application. Keep one store (one key) per account and device. load answers undefined when
 * nothing was saved yet; save is called after every event and every `synced`, in order, each
 * awaited before the next.
 */
export interface CursorStore {
  load(): Promise<number | undefined>;
  save(cursor: number): Promise<void>;
}

/** Keeps the cursor in memory: it lasts as long as the object (share one across client instances). */
export class MemoryCursorStore implements CursorStore {
  private cursor?: number;
  constructor(initial?: number) {
    this.cursor = initial;
  }
  async load(): Promise<number | undefined> {
    return this.cursor;
  }
  async save(cursor: number): Promise<void> {
    this.cursor = cursor;
  }
}

/**
 * Keeps the cursor in the browser's IndexedDB, in object store "cursors" of database `dbName`
 * under `key` (e.g. `${userId}/${deviceId}`). `indexedDB` defaults to the global one.
 */
export class IndexedDBCursorStore implements CursorStore {
  private db?: Promise<IDBDatabase>;
  constructor(
    private readonly key: string,
    private readonly dbName = "natter",
    private readonly idb: IDBFactory = globalThis.indexedDB,
  ) {
    if (!idb) throw new Error("natter: IndexedDB is not available here; pass an IDBFactory or use another CursorStore");
  }

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const req = this.idb.open(this.dbName, 1);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains("cursors")) req.result.createObjectStore("cursors");
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(new Error(`natter: open IndexedDB ${this.dbName}: ${req.error?.message}`));
    });
    return this.db;
  }

  async load(): Promise<number | undefined> {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const req = db.transaction("cursors", "readonly").objectStore("cursors").get(this.key);
      req.onsuccess = () => resolve(typeof req.result === "number" ? req.result : undefined);
      req.onerror = () => reject(new Error(`natter: load cursor ${this.key}: ${req.error?.message}`));
    });
  }

  async save(cursor: number): Promise<void> {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction("cursors", "readwrite");
      tx.objectStore("cursors").put(cursor, this.key);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(new Error(`natter: save cursor ${this.key}: ${tx.error?.message}`));
    });
  }
}
