// The last resort for HTML that html-to-text refused or that is too large for it: a linear-time
// tag stripper (script/style skipped, block tags become line breaks, entities decoded). Linear in
// memory too: a regular-expression replace with a callback held every match of a million-entity
// bomb at once (170 MB for 5 MB of "&amp;"), so entities are decoded by scanning.
const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };
const BLOCK_TAGS = new Set(["br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr"]);
const ENTITY = /&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-zA-Z]{2,6});/y;

/** Appends `text` (between tags) to `out` with its character references decoded. */
function decodeInto(text: string, out: string[]): void {
  let from = 0;
  for (let amp = text.indexOf("&"); amp >= 0; amp = text.indexOf("&", amp + 1)) {
    ENTITY.lastIndex = amp;
    const m = ENTITY.exec(text);
    if (!m) continue;
    const e = m[1]!;
    let decoded: string | undefined;
    if (e[0] !== "#") decoded = ENTITIES[e.toLowerCase()];
    else {
      const code = e[1] === "x" || e[1] === "X" ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10);
      if (code > 0 && code <= 0x10ffff) decoded = String.fromCodePoint(code);
    }
    if (decoded === undefined) continue;
    if (amp > from) out.push(text.slice(from, amp));
    out.push(decoded);
    from = amp + m[0].length;
    amp = from - 1;
  }
  if (from < text.length) out.push(from === 0 ? text : text.slice(from));
}

/** A linear-time tag stripper for HTML that html-to-text refused or that is too large for it. */
export function stripHtml(html: string): string {
  const out: string[] = [];
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf("<", i);
    if (lt < 0) {
      decodeInto(html.slice(i), out);
      break;
    }
    if (lt > i) decodeInto(html.slice(i, lt), out);
    const gt = html.indexOf(">", lt + 1);
    if (gt < 0) break;
    const name = /^\/?([a-zA-Z][a-zA-Z0-9]*)/.exec(html.slice(lt + 1, Math.min(gt, lt + 20)))?.[1]?.toLowerCase() ?? "";
    i = gt + 1;
    if ((name === "script" || name === "style") && html[lt + 1] !== "/") {
      const close = new RegExp(`</${name}`, "gi");
      close.lastIndex = i;
      i = close.exec(html)?.index ?? html.length;
    } else if (BLOCK_TAGS.has(name)) {
      out.push("\n");
    }
  }
  return out
    .join("")
    .replace(/[ \t\r\f\v]+/g, " ")
    .replace(/ ?\n[ \n]*/g, "\n")
    .trim();
}
