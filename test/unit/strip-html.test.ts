// The last-resort HTML stripper: what it keeps, and that a bomb of character references costs
// memory in proportion to its size.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { stripHtml } from "../../src/core/strip-html";
import { REPO_ROOT } from "../standin/paths";

describe("stripHtml", () => {
  it("keeps the text, turns block tags into line breaks, skips script and style, decodes references", () => {
    assert.equal(
      stripHtml(
        "<p>123588</p><div>BA&nbsp;&amp;&#65;&#x42;&lt;</div><script>var x = '<p>';</script><br>1 &bogus; &amp;lt;",
      ),
      "123588\nBA &AB<\n1 &bogus; &lt;",
    );
    assert.equal(stripHtml("a<style>p{}</style>b<STYLE>x</STYLE>c"), "abc");
    assert.equal(stripHtml("&#0;&#x110000;&#9999999;"), "&#0;&#x110000;&#9999999;", "no character: left as is");
    assert.equal(stripHtml("  <b>x</b>\t\t y \r\n\n\n z "), "x y\nz");
    assert.equal(stripHtml("unclosed <b"), "unclosed");
  });

  // Found by the soak (scenario 6): 5 MB of "&amp;" took 170 MB (a replace callback held every match).
  it("decodes a million character references within a 64 MB heap", () => {
    const child = spawnSync(
      process.execPath,
      [
        "--max-old-space-size=64",
        "--import",
        "tsx",
        "-e",
        `const { stripHtml } = require(${JSON.stringify(join(REPO_ROOT, "src", "core", "strip-html.ts"))});
         const s = stripHtml("&amp;".repeat(1_000_000) + "<p>x</p>".repeat(100_000));
         process.stdout.write(String(s.length));`,
      ],
      { cwd: REPO_ROOT, encoding: "utf8" },
    );
    assert.equal(child.status, 0, child.stderr.slice(-500));
    assert.equal(child.stdout, String(1_000_000 + 200_000));
  });
});
