// Preprocessing: HTML -> text, forwarded messages, quoted replies, signatures, whitespace. Each step must be
// conservative: an alarm line that merely looks like mail furniture stays.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  capLineLength,
  DEFAULT_PREPROCESS,
  htmlToPlainText,
  normaliseWhitespace,
  type PrepareSource,
  prepareEmail,
  stripQuotedReply,
  stripSignature,
  stripSubjectPrefixes,
  unwrapForwarded,
} from "../../src/core/datamap/preprocess";
import type { PreprocessOptions } from "../../src/core/datamap/types";

const LIMITS = { maxSourceChars: 16_384, maxLineChars: 2_000 };
const OFF: PreprocessOptions = {
  htmlToText: false,
  preferHtml: false,
  unwrapForwarded: false,
  stripQuotedReplies: false,
  stripSignature: false,
  normaliseWhitespace: false,
};

function src(text: string, extra: Partial<PrepareSource> = {}): PrepareSource {
  return { subject: "Alarm", text, html: null, contentType: "text/plain", replyHeaders: false, ...extra };
}

describe("HTML to text", () => {
  it("keeps a table row on one line with its cells, drops images and link targets", () => {
    const html =
      "<p>Alarm</p><table><tr><td>Event Type:</td><td>Motion</td></tr><tr><td>Channel No.:</td><td>2</td></tr>" +
      '</table><img src="cid:x"><p><a href="http://x.example">Open</a> the viewer to see a very long paragraph ' +
      "which must stay on one line however long it is, because line rules count lines.</p>";
    assert.equal(
      htmlToPlainText(html),
      "Alarm\n\nEvent Type:  Motion\nChannel No.: 2\n\nOpen the viewer to see a very long paragraph which must stay " +
        "on one line however long it is, because line rules count lines.",
    );
  });

  it("is used when the email has no text of its own, or always with preferHtml", () => {
    const html = "<div>123588</div><div>BA</div>";
    const on = { ...OFF, htmlToText: true };
    assert.equal(prepareEmail(src("", { html }), on, LIMITS).body, "123588\nBA");
    assert.equal(
      prepareEmail(src("poor text", { html, contentType: "text/html; charset=utf-8" }), on, LIMITS).body,
      "123588\nBA",
    );
    assert.equal(
      prepareEmail(src("own text", { html, contentType: "multipart/alternative" }), on, LIMITS).body,
      "own text",
    );
    assert.equal(prepareEmail(src("own text", { html }), { ...OFF, preferHtml: true }, LIMITS).body, "123588\nBA");
    assert.equal(prepareEmail(src("", { html }), OFF, LIMITS).body, "");
  });
});

describe("whitespace", () => {
  it("normalises line ends, odd spaces, trailing spaces and blank-line runs, keeping inner spacing", () => {
    assert.equal(
      normaliseWhitespace("\n\n\ufeff123588  \nBA\u00a0\u00a0X\t\n\n\n\nZone:    3\u200b\n\n"),
      "123588\nBA  X\n\nZone:    3",
    );
  });

  it("line ends are normalised even when the whitespace step is off", () => {
    assert.equal(prepareEmail(src("a\r\nb\rc"), OFF, LIMITS).body, "a\nb\nc");
  });

  it("cuts the body and long lines to the limits", () => {
    assert.equal(capLineLength(`${"x".repeat(10)}\nab`, 4), "xxxx\nab");
    const prepared = prepareEmail(src("y".repeat(5000)), OFF, { maxSourceChars: 1000, maxLineChars: 300 });
    assert.equal(prepared.body, "y".repeat(300));
    assert.deepEqual(prepared.notes, ["body cut to its first 1000 of 5000 characters"]);
  });
});

describe("forwarded messages", () => {
  it("unwraps a Gmail forward and takes its Subject", () => {
    const text =
      "FYI\n\n---------- Forwarded message ---------\nFrom: Panel <p@site.example>\nDate: Tue, 1 Jul 2025\n" +
      "Subject: Alarm 7\nTo: <o@site.example>\n\n\n123588\nBA";
    assert.deepEqual(unwrapForwarded(text, "Fwd: Alarm 7"), { body: "123588\nBA", subject: "Alarm 7" });
  });

  it("unwraps an Outlook FW: block, but not a From:/Sent: block in an email that is no forward", () => {
    const text = "________________________________\nFrom: Logger\nSent: Tuesday\nTo: Me\nSubject: Cold\n\nSite: 4471";
    assert.deepEqual(unwrapForwarded(text, "FW: Cold"), { body: "Site: 4471", subject: "Cold" });
    assert.equal(unwrapForwarded(text, "Cold"), null);
    assert.equal(unwrapForwarded("123588\nFrom: zone 3\nSent: 10:00\nTo: desk\n", "Alarm"), null);
  });
});

describe("quoted replies", () => {
  it("cuts from an 'On … wrote:' line, also when wrapped over two lines", () => {
    const one = stripQuotedReply("123588\nBA\n\nOn Tue, 1 Jul 2025, Panel <p@x> wrote:\n> old", false);
    assert.equal(one.text, "123588\nBA\n");
    const two = stripQuotedReply(
      "new\n\nOn Tue, 1 Jul 2025 at 09:00, Alarm Panel <panel@site.example>\nwrote:\n\n> old",
      false,
    );
    assert.equal(two.text, "new\n");
    assert.equal(two.cutAtLine, 3);
  });

  it("cuts an Outlook header block or Original Message only in a reply", () => {
    const outlook = "new\n\n-----Original Message-----\nFrom: a\nSent: b\nTo: c\nSubject: d\n\nold";
    assert.equal(stripQuotedReply(outlook, true).text, "new\n");
    assert.equal(stripQuotedReply(outlook, false).text, outlook);
  });

  it("removes '>' lines only in a reply, and never a '>>> ALARM <<<' banner", () => {
    assert.equal(stripQuotedReply("new\n> old\n>> older\n>\nmore", true).text, "new\nmore");
    assert.equal(stripQuotedReply("new\n> old", false).text, "new\n> old");
    assert.equal(stripQuotedReply(">>> ALARM <<<\n123588", true).text, ">>> ALARM <<<\n123588");
  });

  it("does not cut when nothing new is above the quote", () => {
    const text = "On Tue, 1 Jul 2025, Panel <p@x> wrote:\n> 123588";
    assert.equal(stripQuotedReply(text, true).cutAtLine, null);
  });
});

describe("signatures", () => {
  it("cuts from a '-- ' line", () => {
    assert.deepEqual(stripSignature("123588\nBA\n-- \nAcme\nTel 1"), { text: "123588\nBA", cutAtLine: 3 });
  });

  it("a bare '--' counts only when a short block follows", () => {
    assert.equal(stripSignature("123588\n--\nAcme").text, "123588");
    const long = `123588\n--\n${Array.from({ length: 12 }, (_, i) => `line ${i}`).join("\n")}`;
    assert.equal(stripSignature(long).text, long);
  });

  it("removes 'Sent from my …' lines wherever they are", () => {
    assert.equal(stripSignature("123588\nPA\n\nSent from my iPhone").text, "123588\nPA\n\n");
    assert.equal(stripSignature("123588\nGet Outlook for Android\nBA").text, "123588\n\nBA");
  });

  it("cuts a valediction block at the end, but not one followed by many lines or on the first line", () => {
    assert.equal(stripSignature("123588\nMA\n\nKind regards,\nJane\nAcme").text, "123588\nMA\n");
    const long = `123588\nRegards,\n${Array.from({ length: 7 }, (_, i) => `${i}`).join("\n")}`;
    assert.equal(stripSignature(long).text, long);
    assert.equal(stripSignature("Thanks\n123588").text, "Thanks\n123588");
  });
});

describe("prepareEmail", () => {
  it("strips reply and forward prefixes from the subject", () => {
    assert.equal(stripSubjectPrefixes("RE: FW: Aw: Alarm"), "Alarm");
    assert.equal(stripSubjectPrefixes("Re[2]: Alarm"), "Alarm");
    assert.equal(stripSubjectPrefixes("Reading high"), "Reading high");
  });

  it("runs the steps in order and says what it did", () => {
    const text = "123588\r\nFR\r\n7  \r\n\r\nOn Tue, 1 Jul 2025, Panel <p@x> wrote:\r\n> 123588\r\n> BA\r\n";
    const prepared = prepareEmail(src(text, { subject: "RE: Alarm" }), DEFAULT_PREPROCESS, LIMITS);
    assert.deepEqual(prepared, {
      subject: "Alarm",
      body: "123588\nFR\n7",
      notes: ["quoted reply removed from line 5"],
    });
  });

  it("with every step off leaves the text as it is (but for line ends)", () => {
    const text = "123588  \n\n\n-- \nsig\nOn Tue, Panel wrote:\n> x";
    assert.deepEqual(prepareEmail(src(text, { subject: "RE: Alarm" }), OFF, LIMITS), {
      subject: "RE: Alarm",
      body: text,
      notes: [],
    });
  });
});
