// DOM helpers. User data only ever reaches the page as text (textContent, attribute values),
// never as HTML.

type Child = Node | string | null | undefined | false;

/** el builds an element with attributes (a boolean true sets an empty attribute, false skips it) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c);
  }
  return e;
}

/** byId finds an element of the page that must exist. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`natter web: #${id} is missing from the page`);
  return e as T;
}

/** show toggles the hidden attribute. */
export function show(e: HTMLElement, visible: boolean): void {
  e.hidden = !visible;
}

/** codePoints counts Unicode code points, as the server's text limit does. */
export function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff || i + 1 >= s.length) {
      n++;
      continue;
    }
    const d = s.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) i++;
    n++;
  }
  return n;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

/** clock formats Unix ms as a time of day, with the date when it is not today. */
export function clock(ms: number): string {
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? timeFmt.format(d) : dayFmt.format(d);
}

/** ago says how long ago Unix ms was, in words. */
export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  return clock(ms);
}
