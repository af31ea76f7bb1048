// Runs the shared core tests inside Pyodide (npm package, Node): node pyodide_runner.mjs ROOT OUT MODULE...
// The repository is mounted read-only at /repo (the core is loaded from its source files, as the
// browser does), OUT at /out for files CPython checks afterwards. Prints the runner's JSON report.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [root, outDir, ...modules] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(path.join(root, 'node_modules/pyodide/pyodide.mjs')).href);
const pyodide = await loadPyodide({ stdout: (line) => process.stderr.write(`${line}\n`) });
const { FS } = pyodide;
for (const [mount, hostDir] of [['/repo', root], ['/out', outDir]]) {
  FS.mkdirTree(mount);
  FS.mount(FS.filesystems.NODEFS, { root: hostDir }, mount);
}
const report = pyodide.runPython(`
import sys
sys.path[:0] = ["/repo/pwa/py", "/repo"]
sys.dont_write_bytecode = True
from tests.pycore.runner import run
run(${JSON.stringify(modules)}, "/out")
`);
process.stdout.write(report);
