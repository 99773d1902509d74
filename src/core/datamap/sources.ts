// Sources: where a rule's text comes from (subject, body, a body line, sender, recipients, a header,
// attachment names, a msg property, a constant). Compiled once into small readers.

import type { EmailView } from "./email-view";
import { headerValue } from "./email-view";
import { type LineCache, lineOf, Miss } from "./extract";
import type { FieldSource } from "./types";

/** What a source reads during one map. */
export interface SourceContext {
  view: EmailView;
  /** After preprocessing. */
  subject: string;
  body: string;
  lines: LineCache;
  msg: Record<string, unknown> | undefined;
}

export type SourceReader = (ctx: SourceContext) => string | Miss;

const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
const PATH_SEGMENT = /^[A-Za-z0-9_$-]+$/;
const FORBIDDEN_SEGMENTS = new Set(["__proto__", "prototype", "constructor"]);
const MAX_MSG_JSON = 64 * 1024;

function isIndex(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n !== 0 && Math.abs(n) <= 1_000_000;
}

function addressPart(part: unknown): "address" | "name" {
  if (part === undefined || part === "address") return "address";
  if (part === "name") return "name";
  throw new Error(`address part ${JSON.stringify(part)} is not "address" or "name"`);
}

/** Reads msg by a dotted path ("payload.site.id", "payload.list.0"); own properties only. */
function readPath(msg: Record<string, unknown> | undefined, segments: string[]): unknown {
  let at: unknown = msg;
  for (const s of segments) {
    if (typeof at !== "object" || at === null || !Object.hasOwn(at, s)) return undefined;
    at = (at as Record<string, unknown>)[s];
  }
  return at;
}

function msgValueText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (typeof value === "object" && value !== null && !Buffer.isBuffer(value)) {
    try {
      const json = JSON.stringify(value);
      return json.length > MAX_MSG_JSON ? json.slice(0, MAX_MSG_JSON) : json;
    } catch {
      return null; // cyclic or a BigInt inside
    }
  }
  return null;
}

/** Compiles one source; throws a message for the rule when its settings are unusable. */
export function compileSource(source: FieldSource): SourceReader {
  switch (source.kind) {
    case "subject":
      return (ctx) => ctx.subject;
    case "body":
      return (ctx) => ctx.body;
    case "bodyLine": {
      const n = source.line;
      if (!isIndex(n)) throw new Error(`body line ${JSON.stringify(n)} is not a line number (1, 2, … or -1)`);
      return (ctx) => lineOf(ctx.lines.linesOf(ctx.body), n, "body");
    }
    case "sender": {
      const part = addressPart(source.part);
      return (ctx) => {
        const first = ctx.view.from[0];
        if (first === undefined) return new Miss("the email has no From address");
        return part === "address" ? first.address : first.name;
      };
    }
    case "recipient": {
      const part = addressPart(source.part);
      const includeCc = source.includeCc === true;
      return (ctx) => {
        const list = includeCc ? [...ctx.view.to, ...ctx.view.cc] : ctx.view.to;
        if (list.length === 0) return new Miss(includeCc ? "the email has no To or Cc" : "the email has no To");
        if (list.length === 1) return part === "address" ? list[0].address : list[0].name;
        return list.map((a) => (part === "address" ? a.address : a.name)).join("\n");
      };
    }
    case "header": {
      const { name } = source;
      if (typeof name !== "string" || !HEADER_NAME.test(name)) {
        throw new Error(`header name ${JSON.stringify(name)} is not a header name`);
      }
      const lower = name.toLowerCase();
      return (ctx) => headerValue(ctx.view, lower) ?? new Miss(`the email has no ${name} header`);
    }
    case "attachmentName":
      return (ctx) => {
        const names = ctx.view.attachments.map((a) => a.filename).filter((n) => n !== "");
        return names.length > 0 ? names.join("\n") : new Miss("the email has no named attachment");
      };
    case "msg": {
      const { path } = source;
      const trimmed = typeof path === "string" ? path.replace(/^msg\./, "").trim() : "";
      const segments = trimmed === "" ? [] : trimmed.split(".");
      if (segments.length === 0 || segments.some((s) => !PATH_SEGMENT.test(s) || FORBIDDEN_SEGMENTS.has(s))) {
        throw new Error(`msg property ${JSON.stringify(path)} is not a dotted path like payload.account`);
      }
      return (ctx) => {
        const text = msgValueText(readPath(ctx.msg, segments));
        return text ?? new Miss(`msg.${segments.join(".")} is not set (or not text, a number or an object)`);
      };
    }
    case "constant": {
      const { value } = source;
      if (typeof value !== "string") throw new Error(`constant ${JSON.stringify(value)} is not text`);
      return () => value;
    }
    default:
      throw new Error(`source kind ${JSON.stringify((source as { kind?: unknown }).kind)} is unknown`);
  }
}
