// Run a Python script inside Pyodide (npm package, Node): node pyodide_exec.mjs ROOT WORKDIR SCRIPT
// ROOT (the repository) is mounted at /repo, WORKDIR at /work; the script's stdout is passed through,
// after one line `VERSIONS {pyodide, python, node}`.
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [root, workDir, script] = process.argv.slice(2);
const { startPyodide } = await import(pathToFileURL(path.join(root, 'tools/pyodide_node.mjs')).href);
const pyodide = await startPyodide(root, { '/work': workDir }, { stdout: (line) => process.stdout.write(`${line}\n`) });
const python = pyodide.runPython('import sys; sys.version.split()[0]');
console.log(`VERSIONS ${JSON.stringify({ pyodide: pyodide.version, python, node: process.version })}`);
pyodide.runPython(readFileSync(script, 'utf8'));
