// Runs the shared core tests inside Pyodide (npm package, Node): node pyodide_runner.mjs ROOT OUT MODULE...
// The repository is mounted at /repo (the core is loaded from its source files), OUT at /out for
// files CPython checks afterwards. Prints the runner's JSON report.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [root, outDir, ...modules] = process.argv.slice(2);
const { startPyodide } = await import(pathToFileURL(path.join(root, 'tools/pyodide_node.mjs')).href);
const pyodide = await startPyodide(root, { '/out': outDir }, { stdout: (line) => process.stderr.write(`${line}\n`) });
const report = pyodide.runPython(`
from tests.pycore.runner import run
run(${JSON.stringify(modules)}, "/out")
`);
process.stdout.write(report);
