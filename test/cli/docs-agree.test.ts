/**
 * docs/cli.md and the CLI's help text agree: the same commands, arguments,
 * flags and defaults (`holdfast <command> --help`, run in a child process),
 * required flags marked, and the same exit codes as the top-level help.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { batch, expectExit, REPO } from './cli-harness.ts';
import { createProgram, leafCommands } from '../../tools/cli/main.ts';

interface DocCommand {
  name: string;
  /** Flag or argument (as written in the help, e.g. `--out <dir>`, `<image>`) → default cell. */
  rows: Map<string, string>;
  /** The JSON shape cell of --json mentions an object or array. */
  json: string | undefined;
}

function parseDoc(): { commands: Map<string, DocCommand>; exitCodes: number[] } {
  const text = readFileSync(join(REPO, 'docs/cli.md'), 'utf8');
  const commands = new Map<string, DocCommand>();
  let current: DocCommand | undefined;
  let inExit = false;
  const exitCodes: number[] = [];
  for (const line of text.split('\n')) {
    const heading = /^### holdfast ([a-z]+(?: [a-z][a-z-]*)?)(?: |$)/.exec(line);
    if (heading) {
      current = { name: heading[1], rows: new Map(), json: undefined };
      commands.set(current.name, current);
      inExit = false;
      continue;
    }
    if (/^## /.test(line)) {
      current = undefined;
      inExit = line === '## Exit codes';
      continue;
    }
    const row = /^\| `([^`]+)` \|([^|]*)\| (.*) \|$/.exec(line);
    if (row && current) {
      current.rows.set(row[1], row[2].trim().replace(/^`|`$/g, ''));
      if (row[1] === '--json') current.json = row[3];
    }
    const code = /^\| (\d+) \|/.exec(line);
    if (code && inExit) exitCodes.push(Number(code[1]));
  }
  return { commands, exitCodes };
}

/** Entries of a help section ("Options:", "Arguments:"): term → whitespace-collapsed description. */
function helpSection(help: string, title: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = help.split('\n');
  let at = lines.indexOf(`${title}:`);
  if (at < 0) return out;
  let term = '';
  for (at++; at < lines.length && lines[at] !== ''; at++) {
    const entry = /^ {2}(\S.*?)(?: {2,}(.*))?$/.exec(lines[at]);
    if (entry) {
      term = entry[1].replace(/^-\w, /, '');
      out.set(term, entry[2] ?? '');
    } else out.set(term, `${out.get(term)} ${lines[at].trim()}`);
  }
  return out;
}

function helpDefault(description: string): string {
  const m = /\(default: ([^()]+)\)$/.exec(description.trim());
  if (!m) return '';
  const value = m[1].replace(/^"(.*)"$/, '$1');
  return value === '[]' ? '' : value;
}

describe('docs/cli.md agrees with the help text', () => {
  it('every command, argument, flag, default and exit code', async () => {
    const doc = parseDoc();
    const program = createProgram();
    const leaves = leafCommands(program);
    assert.deepEqual([...doc.commands.keys()].sort(), leaves.map((l) => l.name).sort(), 'the documented commands are the CLI\'s');
    const runs = await batch([['--help'], ...leaves.map((l) => [...l.name.split(' '), '--help'])]);
    // Top-level help: every command listed, exit codes as documented.
    const top = expectExit(runs[0], 0, '--help').stdout;
    for (const { name } of leaves) assert.ok(top.includes(name.split(' ')[0]), `--help lists ${name}`);
    const exitLine = /Exit codes: (.*)/.exec(top.replace(/\n\s*/g, ' '))?.[1] ?? '';
    const helpCodes = [...exitLine.matchAll(/(?:^|, )(\d+) /g)].map((m) => Number(m[1]));
    assert.deepEqual(helpCodes, doc.exitCodes, 'exit codes in --help and in docs/cli.md');
    leaves.forEach(({ name, cmd }, i) => {
      const help = expectExit(runs[i + 1], 0, `${name} --help`).stdout;
      const documented = doc.commands.get(name) as DocCommand;
      const options = helpSection(help, 'Options');
      options.delete('--help');
      const args = helpSection(help, 'Arguments');
      // Arguments in the help's own words: <image>, [firmwareDir], <parts...>.
      const helpArgs = new Map([...args].map(([term, d]) => {
        const a = cmd.registeredArguments.find((r) => r.name() === term);
        const written = a ? (a.required ? `<${term}${a.variadic ? '...' : ''}>` : `[${term}${a.variadic ? '...' : ''}]`) : term;
        return [written, d];
      }));
      const terms = new Map([...options, ...helpArgs]);
      assert.deepEqual([...documented.rows.keys()].sort(), [...terms.keys()].sort(), `${name}: the documented flags and arguments are the help's`);
      for (const [term, description] of terms) {
        const docDefault = documented.rows.get(term) as string;
        const option = cmd.options.find((o) => o.flags === term);
        if (option?.mandatory) {
          assert.equal(docDefault, '(required)', `${name} ${term}: required in the doc`);
          continue;
        }
        const helpValue = helpDefault(description);
        if (helpValue.startsWith('/')) assert.ok(docDefault.includes('firmware/') && helpValue.endsWith('/firmware'), `${name} ${term}: default ${helpValue} documented as ${docDefault}`);
        else assert.equal(docDefault, helpValue, `${name} ${term}: default in the doc ${JSON.stringify(docDefault)}, in the help ${JSON.stringify(helpValue)}`);
      }
      if (options.has('--json')) assert.match(documented.json ?? '', /[{[]/, `${name}: the --json shape is documented`);
    });
  });
});
