// The corpus: realistic alarm emails in test/fixtures/emails, parsed with parseEmail and mapped with the preset
// named in expected.json; each must give the expected alarm fields or the expected rejection.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { compileDataMap, DATA_MAP_PRESETS, type DataMapConfig, type MapResult } from "../../src/core/datamap";
import { parseEmail } from "../../src/core/mail/parse-email";

const DIR = join(__dirname, "..", "fixtures", "emails");
const RECEIVED_AT = "2025-07-01T08:15:03.000Z";

interface Expectation {
  about: string;
  preset: string;
  config?: Partial<DataMapConfig>;
  alarm?: Record<string, unknown>;
  rejected?: { rule: string; reason: string };
}

const expected = JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8")) as Record<string, Expectation>;
const files = readdirSync(DIR)
  .filter((f) => f.endsWith(".eml"))
  .sort();

/** Every key of `want` must be in `got` with the same value; arrays must have the same length. */
function assertSubset(got: unknown, want: unknown, path: string): void {
  if (typeof want !== "object" || want === null) {
    assert.deepEqual(got, want, `${path}: ${JSON.stringify(got)} instead of ${JSON.stringify(want)}`);
    return;
  }
  assert.ok(typeof got === "object" && got !== null, `${path}: missing`);
  if (Array.isArray(want)) {
    assert.ok(Array.isArray(got), `${path}: not a list`);
    assert.equal(got.length, want.length, `${path}: ${got.length} items instead of ${want.length}`);
    for (const [i, w] of want.entries()) assertSubset(got[i], w, `${path}[${i}]`);
    return;
  }
  for (const [key, value] of Object.entries(want)) {
    assertSubset((got as Record<string, unknown>)[key], value, `${path}.${key}`);
  }
}

function configFor(e: Expectation): DataMapConfig {
  const preset = DATA_MAP_PRESETS.find((p) => p.id === e.preset);
  assert.ok(preset, `preset ${e.preset} does not exist`);
  return { ...preset.config(), ...e.config };
}

describe("data-map corpus (test/fixtures/emails)", () => {
  it("has an expectation for every fixture and a fixture for every expectation", () => {
    assert.ok(files.length >= 12, `only ${files.length} fixtures`);
    assert.deepEqual(files, Object.keys(expected).sort());
  });

  for (const file of files) {
    const e = expected[file];
    it(`${file}: ${e?.about ?? "(no expectation)"}`, async () => {
      const email = await parseEmail(readFileSync(join(DIR, file)));
      const config = configFor(e);
      const map = compileDataMap(config);
      const result: MapResult = await map.map({ email, receivedAt: RECEIVED_AT });
      if (e.rejected) {
        assert.equal(result.ok, false, `mapped although a rejection was expected: ${JSON.stringify(result)}`);
        if (result.ok) return;
        assert.equal(result.rule, e.rejected.rule);
        assert.ok(result.reason.includes(e.rejected.reason), `reason: ${result.reason}`);
        return;
      }
      if (!result.ok) assert.fail(`${file} rejected by ${result.rule}: ${result.reason}`);
      assertSubset(result.alarm, e.alarm, "alarm");
      // the trace shows every rule, in the editor's numbering
      assert.deepEqual(
        result.trace.map((t) => t.rule).sort((a, b) => a - b),
        config.rules.map((_, i) => i + 1),
      );
    });
  }

  it("maps the corpus the same way when the email arrives with LF line ends (pasted into Try it)", async () => {
    for (const file of files) {
      const e = expected[file];
      if (!e.alarm) continue;
      const raw = readFileSync(join(DIR, file), "latin1").replace(/\r\n/g, "\n");
      const email = await parseEmail(Buffer.from(raw, "latin1"));
      const result = await compileDataMap(configFor(e)).map({ email, receivedAt: RECEIVED_AT });
      if (!result.ok) assert.fail(`${file} rejected by ${result.rule}: ${result.reason}`);
      assertSubset(result.alarm, e.alarm, `${file} alarm`);
    }
  });
});
