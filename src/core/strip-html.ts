// The last resort for HTML that html-to-text refused or that is too large for it: a linear-time
// tag stripper (script/style skipped, block tags become line breaks, entities decoded).
const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };
const BLOCK_TAGS = new Set(["br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr"]);

/** A linear-time tag stripper for HTML that html-to-text refused or that is too large for it. */
export function stripHtml(html: string): string {
  const out: string[] = [];
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf("<", i);
    if (lt < 0) {
      out.push(html.slice(i));
      break;
    }
    out.push(html.slice(i, lt));
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
    .replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-zA-Z]{2,6});/g, (m, e: string) => {
      if (e[0] !== "#") return ENTITIES[e.toLowerCase()] ?? m;
      const code = e[1] === "x" || e[1] === "X" ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : m;
    })
    .replace(/[ \t\r\f\v]+/g, " ")
    .replace(/ ?\n[ \n]*/g, "\n")
    .trim();
}
