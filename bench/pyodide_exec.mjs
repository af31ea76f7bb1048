// Run a Python script inside Pyodide (npm package, Node): node pyodide_exec.mjs ROOT WORKDIR SCRIPT
// ROOT (the repository) is mounted at /repo with pwa/py on sys.path, WORKDIR at /work; the script's
// stdout is passed through.
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [root, workDir, script] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(path.join(root, 'node_modules/pyodide/pyodide.mjs')).href);
const pyodide = await loadPyodide({ stdout: (line) => process.stdout.write(`${line}\n`) });
const { FS } = pyodide;
for (const [mount, hostDir] of [['/repo', root], ['/work', workDir]]) {
  FS.mkdirTree(mount);
  FS.mount(FS.filesystems.NODEFS, { root: hostDir }, mount);
}
pyodide.runPython(`import sys; sys.path[:0] = ["/repo/pwa/py"]; sys.dont_write_bytecode = True`);
pyodide.runPython(readFileSync(script, 'utf8'));
