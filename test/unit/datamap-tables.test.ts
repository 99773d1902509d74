// Translation tables: the default SIA <-> Contact ID table and its wording, exact codes before phrases, the
// longest phrase winning, whole words only, and restore wording.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CompiledEventTable,
  CompiledValueTable,
  defaultTranslationTables,
  type EventMatch,
  matchForm,
  PhraseMatcher,
  tableProblems,
  translatedEvent,
} from "../../src/core/datamap/tables";
import type { EventTable } from "../../src/core/datamap/types";

const defaults = defaultTranslationTables().events as EventTable;
const events = new CompiledEventTable(defaults);

function lookup(text: string): { sia: string; cid: string; qualifier: string } | null {
  const match: EventMatch | null = events.lookup(text);
  if (match === null) return null;
  const { sia, cid, qualifier } = translatedEvent(match);
  return { sia, cid, qualifier };
}

describe("default events table", () => {
  const spec: [string, string, string, string][] = [
    ["burglary", "BA", "130", "new"],
    ["Motion", "BA", "130", "new"],
    ["Fire", "FA", "110", "new"],
    ["panic", "PA", "120", "new"],
    ["Medical", "MA", "100", "new"],
    ["tamper", "TA", "137", "new"],
    ["AC loss", "AT", "301", "new"],
    ["Low battery", "YT", "302", "new"],
    ["High Temperature", "KH", "158", "new"],
    ["Low temperature", "ZH", "159", "new"],
    ["Water leak", "WA", "154", "new"],
    ["gas", "GA", "151", "new"],
    ["duress", "HA", "121", "new"],
    ["opening", "OP", "401", "new"],
    ["closing", "CL", "401", "restore"],
  ];
  for (const [text, sia, cid, qualifier] of spec) {
    it(`"${text}" -> ${sia} / ${cid} ${qualifier}`, () => {
      assert.deepEqual(lookup(text), { sia, cid, qualifier });
    });
  }

  it("matches codes exactly: SIA, SIA restore codes, Contact ID and Contact ID with its qualifier", () => {
    assert.deepEqual(lookup("BA"), { sia: "BA", cid: "130", qualifier: "new" });
    assert.deepEqual(lookup("br"), { sia: "BR", cid: "130", qualifier: "restore" });
    assert.deepEqual(lookup("KR"), { sia: "KR", cid: "158", qualifier: "restore" });
    assert.deepEqual(lookup("130"), { sia: "BA", cid: "130", qualifier: "new" });
    assert.deepEqual(lookup("E158"), { sia: "KH", cid: "158", qualifier: "new" });
    assert.deepEqual(lookup("R158"), { sia: "KR", cid: "158", qualifier: "restore" });
    assert.deepEqual(lookup("3401"), { sia: "CL", cid: "401", qualifier: "restore" });
    assert.deepEqual(lookup("1401"), { sia: "OP", cid: "401", qualifier: "new" });
    assert.equal(lookup("JA"), null);
  });

  it("finds phrases in text, the longest winning", () => {
    assert.deepEqual(lookup("High Temperature Alarm at Pantry Freezer 3, site 4471"), {
      sia: "KH",
      cid: "158",
      qualifier: "new",
    });
    assert.equal(lookup("LOW   TEMPERATURE warning, Cold Room")?.sia, "ZH");
    assert.equal(lookup("Fire trouble on loop 2")?.sia, "FT");
    assert.equal(lookup("Motion Detection alarm on Garage Cam")?.sia, "BA");
    assert.equal(lookup("System disarmed by user 4")?.sia, "OP");
    assert.equal(lookup("System armed by user 4")?.sia, "CL");
  });

  it("matches whole words only", () => {
    assert.equal(lookup("Freezer door"), null); // not "freeze"
    assert.equal(lookup("Basement sensor"), null); // not "BA"
    assert.equal(lookup("Firmware updated"), null); // not "fire"
    assert.equal(lookup("Looking good"), null);
  });

  it("restore wording makes the event a restore, with the SIA restore code", () => {
    assert.deepEqual(lookup("High Temperature Alarm cleared"), { sia: "KR", cid: "158", qualifier: "restore" });
    assert.deepEqual(lookup("Burglary restored zone 3"), { sia: "BR", cid: "130", qualifier: "restore" });
    assert.deepEqual(lookup("Water leak - back to normal"), { sia: "WR", cid: "154", qualifier: "restore" });
    assert.deepEqual(lookup("AC power failure: OK"), { sia: "AR", cid: "301", qualifier: "restore" });
    assert.equal(lookup("Temperature normal")?.qualifier, "restore");
  });

  it("is consistent: valid codes, no phrase in two entries", () => {
    assert.deepEqual(tableProblems("events", defaults), []);
    const seen = new Map<string, string>();
    for (const entry of defaults.entries) {
      for (const phrase of entry.match) {
        const form = matchForm(phrase);
        assert.ok(!seen.has(form), `"${phrase}" is in ${seen.get(form)} and ${entry.sia}/${entry.cid}`);
        seen.set(form, `${entry.sia}/${entry.cid}`);
      }
    }
  });
});

describe("value tables and phrase matching", () => {
  const sensors = new CompiledValueTable({
    kind: "values",
    entries: [
      { match: ["Freezer"], value: "1" },
      { match: ["Pantry Freezer 3", "PF3"], value: "3" },
    ],
  });

  it("exact value first, then the longest phrase", () => {
    assert.equal(sensors.lookup("pf3"), "3");
    assert.equal(sensors.lookup("Alarm at PANTRY  FREEZER 3, site 4471"), "3");
    assert.equal(sensors.lookup("Walk-in Freezer"), "1");
    assert.equal(sensors.lookup("Cold room"), null);
  });

  it("phrases: false looks up whole values only", () => {
    const strict = new CompiledValueTable({
      kind: "values",
      phrases: false,
      entries: [{ match: ["PF3"], value: "3" }],
    });
    assert.equal(strict.lookup("PF3"), "3");
    assert.equal(strict.lookup("at PF3"), null);
  });

  it("handles non-ASCII words and phrases that start or end with punctuation", () => {
    const m = new PhraseMatcher<string>([
      ["Kühlraum", "k"],
      ["#3", "hash"],
    ]);
    assert.equal(m.find(matchForm("Störung KÜHLRAUM"))?.payload, "k");
    assert.equal(m.find(matchForm("Kühlraumtür offen")), null);
    assert.equal(m.find(matchForm("sensor#3"))?.payload, "hash");
  });

  it("reports problems of a table the editor stored", () => {
    assert.deepEqual(tableProblems("x", { kind: "values", entries: [{ match: "a", value: 3 }] }), [
      'table "x" entry 1: match is not a list of words',
      'table "x" entry 1: value is not text',
    ]);
    assert.deepEqual(tableProblems("y", { kind: "codes", entries: [] }), [
      'table "y": kind "codes" is not "events" or "values"',
    ]);
  });
});
