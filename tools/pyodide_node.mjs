// Start Pyodide (the npm package) in Node with host folders mounted and the core on sys.path.
// Shared by the Pyodide test runner (tests/pycore) and the core benchmark (bench/pycore.py).
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** root: the repository; mounts: {"/mount/point": "/host/dir"}. The repository is always at /repo. */
export async function startPyodide(root, mounts = {}, options = {}) {
  const { loadPyodide } = await import(pathToFileURL(path.join(root, 'node_modules/pyodide/pyodide.mjs')).href);
  const pyodide = await loadPyodide(options);
  const { FS } = pyodide;
  for (const [mount, hostDir] of Object.entries({ '/repo': root, ...mounts })) {
    FS.mkdirTree(mount);
    FS.mount(FS.filesystems.NODEFS, { root: hostDir }, mount);
  }
  pyodide.runPython('import sys; sys.path[:0] = ["/repo/pwa/py", "/repo"]; sys.dont_write_bytecode = True');
  return pyodide;
}
