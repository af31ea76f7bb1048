// What the Node sides of the agreement tests share: the app's modules loaded from the checkout given as
// the first argument, and one JSON request per stdin line answered on stdout:
// {"kind": ..., "args": [...]} -> {"value": ...} or {"error": message}.
// Non-finite numbers travel as {"$float": "NaN"|"Infinity"|"-Infinity"} (JSON has none).
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

/** The app's module `file` (a path under pwa/). */
export const load = (file) => import(pathToFileURL(path.join(process.argv[2], 'pwa', file)).href);

const revive = (key, value) => (value && typeof value === 'object' && '$float' in value ? Number(value.$float) : value);

/** Answer each request line with `kinds[kind](...args)` until stdin ends. */
export async function serve(kinds) {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    const { kind, args } = JSON.parse(line, revive);
    let reply;
    try {
      reply = { value: (await kinds[kind](...args)) ?? null };
    } catch (error) {
      reply = { error: String(error?.message ?? error) };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  }
}
