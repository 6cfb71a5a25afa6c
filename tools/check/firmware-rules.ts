/**
 * The check that keeps `firmware/` engine-neutral and layered.
 *
 * `firmware/` is compiled for Moddable XS on the ESP32 (XS 17 on the device),
 * tested in Node and in host XS 13.3, and should later run on other small
 * engines (Espruino). The TypeScript compiler cannot see most of what breaks
 * there: a Node global type-checks under the repository's tsconfig, a module-level
 * `let` compiles fine and then survives a simulated reboot, an ES2023 method
 * exists in Node but not in XS 13.3. This check parses every source file with
 * the TypeScript compiler API (syntax only, no type checker) and reports
 * those patterns. docs/design/firmware-rules.md gives the reasons at length.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import ts from 'typescript';

export type RuleId =
  | 'import-outside'
  | 'layer'
  | 'unknown-area'
  | 'forbidden-global'
  | 'forbidden-member'
  | 'module-state'
  | 'top-level-effect'
  | 'cycle';

export interface Violation {
  /** Path relative to the firmware directory, with `/` separators. */
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
  rule: RuleId;
  message: string;
}

/** Every rule with what it forbids and why, in one line each. */
export const RULES: Readonly<Record<RuleId, string>> = Object.freeze({
  'import-outside':
    'imports stay inside firmware/ (relative specifiers) or the @noble packages; embedded:* and the Moddable modules of MODDABLE_MODULES only under targets/moddable/: no Node built-ins, no other packages',
  layer: 'imports point downward in the area table (LAYERS): same area, hal, or an area of strictly lower rank',
  'unknown-area': 'every file lives in one of the areas of LAYERS (first folder under firmware/)',
  'forbidden-global':
    'no host globals (Node, browser, xst): time, randomness, logging, crypto and I/O come from the HAL',
  'forbidden-member':
    'no Math.random, and no built-in methods missing from XS 13.3 (Uint8Array hex/base64, change-array-by-copy, Promise.withResolvers)',
  'module-state': 'no top-level let/var: a reboot must be a fresh instance, and Moddable preload puts module state in flash',
  'top-level-effect': 'no statements that run at module load other than declarations: loading a module must do nothing',
  cycle: 'no import cycles between firmware modules (type-only imports included): a module and what it imports form a tree',
});

/** Areas of firmware/: the first folder under it. */
export type Area = 'hal' | 'base' | 'storage' | 'security' | 'protocol' | 'update' | 'runtime' | 'targets';

export interface Layer {
  readonly rank: number;
  readonly role: string;
}

/**
 * The layer table. A file may import from its own area, from `hal`, or from
 * an area of strictly lower rank. `hal` is the floor: every area may import
 * it, and it imports nothing but itself (so `base`, also rank 0, may import
 * `hal` but not the reverse). Areas of equal rank are independent of each
 * other (storage and security, protocol and update).
 */
export const LAYERS: Readonly<Record<Area, Layer>> = Object.freeze({
  hal: { rank: 0, role: 'platform interfaces (flash, clock, entropy, crypto, ...); imports only hal' },
  base: { rank: 0, role: 'pure shared helpers: CRC, byte utilities, tick arithmetic' },
  storage: { rank: 1, role: 'flash formats: journals, key-value records' },
  security: { rank: 1, role: 'keys, signatures, sealing' },
  protocol: { rank: 2, role: 'wire formats and sessions' },
  update: { rank: 2, role: 'image download, verification, A/B slot switch' },
  runtime: { rank: 3, role: 'the scheduler and application wiring' },
  targets: { rank: 4, role: 'platform adapters implementing the HAL (targets/moddable, ...)' },
});

function isArea(name: string): name is Area {
  return Object.hasOwn(LAYERS, name);
}

/** Whether a file in area `from` may import a file in area `to`. */
export function mayImport(from: Area, to: Area): boolean {
  if (from === to) return true;
  if (from === 'hal') return false;
  return to === 'hal' || LAYERS[to].rank < LAYERS[from].rank;
}

/** Packages firmware may import besides its own files: pure JavaScript, no host API. */
export const ALLOWED_PACKAGES: readonly string[] = Object.freeze([
  '@noble/hashes',
  '@noble/ed25519',
  '@noble/ciphers',
  '@noble/curves',
]);

/** Only files under this folder may import Moddable's ECMA-419 `embedded:*` modules and the modules below. */
export const EMBEDDED_FOLDER = 'targets/moddable/';

/**
 * Moddable SDK modules without an `embedded:` prefix that the Moddable
 * target imports (plus holdfast's own native glue, tools/boards/moddable/):
 * allowed under EMBEDDED_FOLDER only, exactly these names.
 */
export const MODDABLE_MODULES: readonly string[] = Object.freeze(['time', 'timer', 'socket', 'securesocket', 'crypt', 'holdfast-native']);

const WALL_CLOCK = 'wall clock: time comes from the HAL (MonotonicClock)';
const TIMER = 'host timer (Node global, a Moddable module, absent from bare XS): scheduling belongs to the runtime, driven by the HAL clock';
const NODE_ONLY = 'Node-only global: XS has none of it';

/** Host globals firmware must not reference, each with the reason. */
export const FORBIDDEN_GLOBALS: Readonly<Record<string, string>> = Object.freeze({
  Buffer: 'Node-only: bytes are Uint8Array, helpers live in firmware/base',
  process: 'Node-only: configuration comes from the runtime, restarts from the HAL (System)',
  console: 'host logging, absent from XS: logging goes through the HAL (Log)',
  print: 'xst/xsnap host function: logging goes through the HAL (Log)',
  setTimeout: TIMER,
  setInterval: TIMER,
  setImmediate: TIMER,
  clearTimeout: TIMER,
  clearInterval: TIMER,
  queueMicrotask: 'WHATWG host API, not ECMA-262: use a promise or the runtime scheduler',
  structuredClone: 'WHATWG host API, not ECMA-262: copy explicitly',
  crypto: 'host crypto (Web Crypto / Node): primitives come from the HAL (Crypto), randomness from the HAL (Entropy)',
  atob: 'WHATWG host API, absent from XS: use a codec from firmware/base',
  btoa: 'WHATWG host API, absent from XS: use a codec from firmware/base',
  Intl: 'left out of device XS builds (size): no locale-dependent formatting',
  URL: 'WHATWG host API, absent from XS: parse explicitly',
  URLSearchParams: 'WHATWG host API, absent from XS: parse explicitly',
  Date: WALL_CLOCK,
  performance: WALL_CLOCK.replace('wall clock', 'host timing API'),
  fetch: 'host network API: connections go through the HAL (StreamConnector)',
  require: 'CommonJS: firmware is ES modules only, XS has no require',
  global: NODE_ONLY,
  __dirname: NODE_ONLY,
  __filename: NODE_ONLY,
});

const XS_13_3 = 'missing in XS 13.3 (the test engine)';
const HEX_BASE64 = 'Uint8Array hex/base64 is missing in XS 13.3 (the test engine): use a codec from firmware/base';

/** Property names firmware must not access on anything, with the reason. */
export const FORBIDDEN_MEMBERS: Readonly<Record<string, string>> = Object.freeze({
  toHex: HEX_BASE64,
  fromHex: HEX_BASE64,
  toBase64: HEX_BASE64,
  fromBase64: HEX_BASE64,
  setFromHex: HEX_BASE64,
  setFromBase64: HEX_BASE64,
  toSorted: `${XS_13_3}: copy, then sort`,
  toReversed: `${XS_13_3}: copy, then reverse`,
  toSpliced: `${XS_13_3}: copy, then splice`,
  withResolvers: `${XS_13_3}: capture resolve/reject in new Promise(...)`,
});

const MATH_RANDOM =
  'unseeded in XS, identical in every worker: randomness comes from the HAL (Entropy)';

/** Extensions checked: TypeScript and, should any appear, plain JavaScript. */
const SOURCE_EXTENSIONS = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'];

/** Check every source file under `firmwareDir`; violations sorted by file, line, column. */
export function checkFirmware(firmwareDir: string): Violation[] {
  const violations: Violation[] = [];
  const imports = new Map<string, string[]>();
  for (const file of listSources(firmwareDir)) {
    const text = readFileSync(path.join(firmwareDir, ...file.split('/')), 'utf8');
    violations.push(...checkSource(file, text));
    imports.set(file, relativeImports(file, text));
  }
  violations.push(...findCycles(imports));
  return violations.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.column - b.column));
}

/** The firmware files `file` imports by relative specifier (static, re-export, type-only or dynamic). */
function relativeImports(file: string, text: string): string[] {
  const targets: string[] = [];
  for (const ref of ts.preProcessFile(text, true, true).importedFiles) {
    if (!ref.fileName.startsWith('./') && !ref.fileName.startsWith('../')) continue;
    targets.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), ref.fileName)));
  }
  return targets;
}

/**
 * Rule cycle: every strongly connected group of two or more files (or a
 * file importing itself) is reported once, at its first file, naming a
 * cycle through it. Tarjan's algorithm, iterative so deep trees cannot
 * overflow the stack.
 */
function findCycles(imports: ReadonlyMap<string, readonly string[]>): Violation[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const violations: Violation[] = [];
  let next = 0;
  const edges = (file: string) => (imports.get(file) ?? []).filter((target) => imports.has(target));
  for (const root of imports.keys()) {
    if (index.has(root)) continue;
    const work: { file: string; edge: number }[] = [{ file: root, edge: 0 }];
    index.set(root, next);
    low.set(root, next++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const targets = edges(frame.file);
      if (frame.edge < targets.length) {
        const target = targets[frame.edge++];
        if (!index.has(target)) {
          index.set(target, next);
          low.set(target, next++);
          stack.push(target);
          onStack.add(target);
          work.push({ file: target, edge: 0 });
        } else if (onStack.has(target)) {
          low.set(frame.file, Math.min(low.get(frame.file) as number, index.get(target) as number));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].file;
        low.set(parent, Math.min(low.get(parent) as number, low.get(frame.file) as number));
      }
      if (low.get(frame.file) !== index.get(frame.file)) continue;
      const group: string[] = [];
      let member: string;
      do {
        member = stack.pop() as string;
        onStack.delete(member);
        group.push(member);
      } while (member !== frame.file);
      const selfImport = group.length === 1 && edges(group[0]).includes(group[0]);
      if (group.length > 1 || selfImport) violations.push(cycleViolation(group.sort(), edges));
    }
  }
  return violations;
}

/** One violation for a group of files that import each other: a path from its first file back to it. */
function cycleViolation(group: readonly string[], edges: (file: string) => string[]): Violation {
  const members = new Set(group);
  const first = group[0];
  // Breadth-first from the first file, inside the group, back to it.
  const cameFrom = new Map<string, string>();
  const queue = [first];
  let last = first;
  search: while (queue.length > 0) {
    const file = queue.shift() as string;
    for (const target of edges(file)) {
      if (!members.has(target)) continue;
      if (target === first) {
        last = file;
        break search;
      }
      if (!cameFrom.has(target)) {
        cameFrom.set(target, file);
        queue.push(target);
      }
    }
  }
  const chain = [first];
  for (let at = last; at !== first; at = cameFrom.get(at) as string) chain.splice(1, 0, at);
  chain.push(first);
  return { file: first, line: 1, column: 1, rule: 'cycle', message: `import cycle: ${chain.join(' -> ')}: move what they share into a module both import` };
}

/** Source files under `dir`, relative with `/` separators, sorted. */
function listSources(dir: string, prefix = ''): string[] {
  const files: string[] = [];
  const entries = readdirSync(path.join(dir, prefix), { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) files.push(...listSources(dir, rel));
    else if (entry.isFile() && SOURCE_EXTENSIONS.some((ext) => entry.name.endsWith(ext))) files.push(rel);
  }
  return files;
}

/**
 * Check one file given its path relative to the firmware directory (which
 * decides its area and where its relative imports land) and its text.
 */
export function checkSource(file: string, text: string): Violation[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, scriptKind(file));
  const violations: Violation[] = [];
  const report: Report = (at, rule, message) => {
    const position = typeof at === 'number' ? at : at.getStart(source);
    const { line, character } = source.getLineAndCharacterOfPosition(position);
    violations.push({ file, line: line + 1, column: character + 1, rule, message });
  };

  const area = areaOf(file);
  if (area === undefined) {
    const where = file.includes('/') ? `unknown area '${file.split('/')[0]}'` : 'no area (directly in firmware/)';
    report(0, 'unknown-area', `${where}: put the file in one of ${Object.keys(LAYERS).join(', ')}`);
  }
  checkTopLevel(source, report);
  new ReferenceWalker(source, file, area, report).walk();
  return violations.sort((a, b) => a.line - b.line || a.column - b.column);
}

/** Record a violation at a node's first token or at a character position. */
type Report = (at: ts.Node | number, rule: RuleId, message: string) => void;

function scriptKind(file: string): ts.ScriptKind {
  return /\.[mc]?js$/.test(file) ? ts.ScriptKind.JS : ts.ScriptKind.TS;
}

/** The area of a firmware-relative path, or undefined if it is in none. */
function areaOf(file: string): Area | undefined {
  const parts = file.split('/');
  return parts.length > 1 && isArea(parts[0]) ? parts[0] : undefined;
}

// ---------------------------------------------------------------------------
// module-state and top-level-effect: what runs when a module loads.
// ---------------------------------------------------------------------------

/**
 * Loading a module must only declare things. Module-level mutable state would
 * survive a simulated reboot (the host keeps the module instance) and is
 * frozen into flash by Moddable's preload; a call at load runs at preload
 * time on the build machine, not on the device.
 */
function checkTopLevel(source: ts.SourceFile, report: Report): void {
  // A .d.ts only declares what exists elsewhere: it has no state and no effect.
  if (source.isDeclarationFile) return;
  checkModuleStatements(source.statements, report);
}

function checkModuleStatements(statements: readonly ts.Statement[], report: Report): void {
  let inPrologue = true;
  for (const statement of statements) {
    const isDirective = ts.isExpressionStatement(statement) && ts.isStringLiteral(statement.expression);
    if (!isDirective) inPrologue = false;

    if (ts.isVariableStatement(statement)) {
      if (isAmbient(statement)) continue;
      const kind = statement.declarationList.flags & ts.NodeFlags.BlockScoped;
      if (kind === ts.NodeFlags.Let || kind === 0) {
        const keyword = kind === 0 ? 'var' : 'let';
        const names = statement.declarationList.declarations.map((d) => d.name.getText()).join(', ');
        report(statement, 'module-state',
          `module-level '${keyword} ${names}': mutable module state outlives a reboot and is frozen by preload; keep state in an instance`);
      }
    } else if (ts.isModuleDeclaration(statement)) {
      // A namespace body runs at load like the module itself; ambient ones do not run.
      if (!isAmbient(statement) && statement.body && ts.isModuleBlock(statement.body)) {
        checkModuleStatements(statement.body.statements, report);
      }
    } else if (ts.isExportAssignment(statement)) {
      const effect = effectOf(statement.expression);
      if (effect) report(statement, 'top-level-effect', `${effect} in 'export default' runs at module load: export a declaration`);
    } else if (ts.isExpressionStatement(statement)) {
      if (isDirective && inPrologue) continue; // 'use strict' and the like
      const effect = effectOf(statement.expression) ?? 'expression';
      report(statement, 'top-level-effect', `top-level ${effect} runs at module load (preload-unsafe): move it into a function the runtime calls`);
    } else if (!isDeclarationStatement(statement)) {
      const keyword = ts.isBlock(statement) ? 'block'
        : ts.isLabeledStatement(statement) ? 'labeled' : statement.getText().split(/[^A-Za-z]/)[0];
      report(statement, 'top-level-effect', `top-level '${keyword}' statement runs at module load: only declarations belong at top level`);
    }
  }
}

function isDeclarationStatement(statement: ts.Statement): boolean {
  return (
    ts.isImportDeclaration(statement) ||
    ts.isImportEqualsDeclaration(statement) ||
    ts.isExportDeclaration(statement) ||
    ts.isNamespaceExportDeclaration(statement) ||
    ts.isFunctionDeclaration(statement) ||
    ts.isClassDeclaration(statement) ||
    ts.isInterfaceDeclaration(statement) ||
    ts.isTypeAliasDeclaration(statement) ||
    ts.isEnumDeclaration(statement) ||
    ts.isEmptyStatement(statement)
  );
}

/** 'call' / 'assignment' / ... if evaluating `expression` has an obvious effect. */
function effectOf(expression: ts.Expression): string | undefined {
  const e = skipWrappers(expression);
  if (ts.isCallExpression(e) || ts.isTaggedTemplateExpression(e)) return 'call';
  if (ts.isNewExpression(e)) return "'new'";
  if (ts.isAwaitExpression(e)) return "'await'";
  if (ts.isBinaryExpression(e) && isAssignmentOperator(e.operatorToken.kind)) return 'assignment';
  if ((ts.isPrefixUnaryExpression(e) || ts.isPostfixUnaryExpression(e)) &&
    (e.operator === ts.SyntaxKind.PlusPlusToken || e.operator === ts.SyntaxKind.MinusMinusToken)) return 'assignment';
  if (ts.isDeleteExpression(e)) return "'delete'";
  return undefined;
}

/** `(x)`, `x as T`, `x satisfies T`, `x!`, `<T>x` evaluate to `x`. */
function skipWrappers(expression: ts.Expression): ts.Expression {
  let e = expression;
  while (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e) ||
    ts.isNonNullExpression(e) || ts.isTypeAssertionExpression(e)) {
    e = e.expression;
  }
  return e;
}

function isAssignmentOperator(kind: ts.SyntaxKind): boolean {
  return kind >= ts.SyntaxKind.FirstAssignment && kind <= ts.SyntaxKind.LastAssignment;
}

function isAmbient(node: ts.Node): boolean {
  return (ts.getCombinedModifierFlags(node as ts.Declaration) & ts.ModifierFlags.Ambient) !== 0 ||
    node.getSourceFile().isDeclarationFile;
}

// ---------------------------------------------------------------------------
// import-outside, layer, forbidden-global, forbidden-member: one walk over
// the value positions of the file, tracking which names are declared locally.
// ---------------------------------------------------------------------------

class ReferenceWalker {
  /** Names declared in each enclosing scope, innermost last. */
  private readonly scopes: Set<string>[] = [];

  constructor(
    private readonly source: ts.SourceFile,
    private readonly file: string,
    private readonly area: Area | undefined,
    private readonly report: Report,
  ) {}

  walk(): void {
    this.checkReferenceDirectives();
    this.visit(this.source);
  }

  private readonly visit = (node: ts.Node): void => {
    // Imports: check the specifier; the bound names are declarations, not references.
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      if (node.moduleSpecifier) this.checkSpecifierNode(node.moduleSpecifier);
      return;
    }
    if (ts.isImportEqualsDeclaration(node)) {
      if (ts.isExternalModuleReference(node.moduleReference)) this.checkSpecifierNode(node.moduleReference.expression);
      return;
    }

    // `class C extends Base` and `f<T>` (instantiation) hold a value expression in a type-like node.
    if (ts.isExpressionWithTypeArguments(node) && !isImplementsClause(node.parent)) {
      this.visit(node.expression);
      return;
    }
    // Types do not run: a type named URL is fine. Only `import('x')` types matter there.
    if (ts.isTypeNode(node) || ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node)) {
      this.visitTypeImports(node);
      return;
    }

    if (ts.isCallExpression(node)) this.checkCall(node);
    if (ts.isIdentifier(node)) this.checkIdentifier(node);
    if (ts.isPropertyAccessExpression(node) || ts.isElementAccessExpression(node)) this.checkMember(node);
    if (ts.isBindingElement(node)) this.checkDestructuredMember(node);

    const declared = declaredNames(node);
    if (declared) this.scopes.push(declared);
    ts.forEachChild(node, this.visit);
    if (declared) this.scopes.pop();
  };

  private readonly visitTypeImports = (node: ts.Node): void => {
    if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      this.checkSpecifier(node.argument.literal.text, node.argument);
    }
    ts.forEachChild(node, this.visitTypeImports);
  };

  /** `/// <reference ...>` pulls declarations in as surely as an import does. */
  private checkReferenceDirectives(): void {
    for (const ref of this.source.typeReferenceDirectives) {
      this.report(ref.pos, 'import-outside', `'/// <reference types="${ref.fileName}">' brings in declarations from outside firmware/`);
    }
    for (const ref of this.source.libReferenceDirectives) {
      if (!/^es(\d{4}|next)(\.|$)/i.test(ref.fileName)) {
        this.report(ref.pos, 'import-outside', `'/// <reference lib="${ref.fileName}">' brings in host declarations: firmware has the ECMAScript library only`);
      }
    }
    // A path reference is relative to the file even without './'.
    for (const ref of this.source.referencedFiles) {
      this.checkSpecifier(ref.fileName.startsWith('.') ? ref.fileName : `./${ref.fileName}`, ref.pos);
    }
  }

  private checkSpecifierNode(node: ts.Expression): void {
    if (ts.isStringLiteralLike(node)) this.checkSpecifier(node.text, node);
    else this.report(node, 'import-outside', 'computed module specifier: it cannot be checked, use a string literal');
  }

  /** Rule import-outside for one specifier, then rule layer if it stays inside firmware/. */
  private checkSpecifier(specifier: string, node: ts.Node | number): void {
    if (specifier === '.' || specifier === '..' || specifier.startsWith('./') || specifier.startsWith('../')) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(this.file), specifier));
      if (target === '..' || target.startsWith('../')) {
        this.report(node, 'import-outside', `'${specifier}' resolves outside firmware/: firmware may only import its own files`);
      } else {
        this.checkLayer(specifier, target, node);
      }
      return;
    }
    if (ALLOWED_PACKAGES.some((pkg) => specifier === pkg || specifier.startsWith(`${pkg}/`))) return;
    if (specifier.startsWith('embedded:')) {
      if (!this.file.startsWith(EMBEDDED_FOLDER)) {
        this.report(node, 'import-outside', `'${specifier}' is a Moddable ECMA-419 module: only ${EMBEDDED_FOLDER} may import embedded:*; elsewhere use the HAL`);
      }
      return;
    }
    if (MODDABLE_MODULES.includes(specifier) && this.file.startsWith(EMBEDDED_FOLDER)) return;
    const why = specifier.startsWith('node:') || isBuiltin(specifier)
      ? 'is a Node built-in: XS has none of Node\'s modules, the platform is reached through firmware/hal'
      : `is outside firmware/: besides its own files firmware may import only ${ALLOWED_PACKAGES.join(', ')}`;
    this.report(node, 'import-outside', `'${specifier}' ${why}`);
  }

  private checkLayer(specifier: string, target: string, node: ts.Node | number): void {
    if (this.area === undefined) return; // already reported as unknown-area
    const targetArea = areaOf(target);
    if (targetArea === undefined) {
      this.report(node, 'layer', `'${specifier}' resolves to firmware/${target}, which is in no area of the layer table`);
      return;
    }
    if (mayImport(this.area, targetArea)) return;
    const from = LAYERS[this.area].rank;
    const to = LAYERS[targetArea].rank;
    const why = this.area === 'hal'
      ? 'hal imports only hal: it is the floor every other area stands on'
      : from === to
        ? `same rank ${from}: areas of equal rank are independent, move the shared part down`
        : `rank ${from} may not import rank ${to}: imports point downward only`;
    this.report(node, 'layer', `${this.area} may not import ${targetArea} ('${specifier}'): ${why}`);
  }

  /** Dynamic `import(x)` and `require(x)`. */
  private checkCall(call: ts.CallExpression): void {
    const isDynamicImport = call.expression.kind === ts.SyntaxKind.ImportKeyword;
    const isRequire = ts.isIdentifier(call.expression) && call.expression.text === 'require' && !this.isLocal('require');
    if (!isDynamicImport && !isRequire) return;
    const [argument] = call.arguments;
    if (argument) this.checkSpecifierNode(argument);
  }

  /** Rule forbidden-global for a bare name. */
  private checkIdentifier(id: ts.Identifier): void {
    if (!Object.hasOwn(FORBIDDEN_GLOBALS, id.text)) return;
    if (!isValueReference(id) || this.isLocal(id.text)) return;
    this.report(id, 'forbidden-global', `'${id.text}': ${FORBIDDEN_GLOBALS[id.text]}`);
  }

  /** Rules forbidden-global (`globalThis.X`) and forbidden-member for `a.b` and `a['b']`. */
  private checkMember(access: ts.PropertyAccessExpression | ts.ElementAccessExpression): void {
    const name = memberName(access);
    if (name === undefined) return;
    const object = this.globalName(access.expression);
    if (object === 'globalThis' && Object.hasOwn(FORBIDDEN_GLOBALS, name)) {
      this.report(access, 'forbidden-global', `'globalThis.${name}': ${FORBIDDEN_GLOBALS[name]}`);
    } else if (object === 'Math' && name === 'random') {
      this.report(access, 'forbidden-member', `'Math.random': ${MATH_RANDOM}`);
    } else if (Object.hasOwn(FORBIDDEN_MEMBERS, name)) {
      this.report(ts.isPropertyAccessExpression(access) ? access.name : access.argumentExpression,
        'forbidden-member', `'.${name}': ${FORBIDDEN_MEMBERS[name]}`);
    }
  }

  /** `const { random } = Math` and `const { toSorted } = list` are member accesses too. */
  private checkDestructuredMember(element: ts.BindingElement): void {
    if (!ts.isObjectBindingPattern(element.parent)) return;
    const key = element.propertyName ?? element.name;
    if (!ts.isIdentifier(key) && !ts.isStringLiteral(key)) return;
    const name = key.text;
    const holder = element.parent.parent;
    const source = ts.isVariableDeclaration(holder) && holder.initializer ? this.globalName(holder.initializer) : undefined;
    if (source === 'Math' && name === 'random') {
      this.report(key, 'forbidden-member', `'Math.random': ${MATH_RANDOM}`);
    } else if (Object.hasOwn(FORBIDDEN_MEMBERS, name)) {
      this.report(key, 'forbidden-member', `'.${name}': ${FORBIDDEN_MEMBERS[name]}`);
    }
  }

  /**
   * 'X' if `expression` denotes the global X: a name not declared in the
   * file, or `globalThis.X` / `globalThis['X']`.
   */
  private globalName(expression: ts.Expression): string | undefined {
    const e = skipWrappers(expression);
    if (ts.isIdentifier(e)) return this.isLocal(e.text) ? undefined : e.text;
    if ((ts.isPropertyAccessExpression(e) || ts.isElementAccessExpression(e)) && this.globalName(e.expression) === 'globalThis') {
      return memberName(e);
    }
    return undefined;
  }

  private isLocal(name: string): boolean {
    return this.scopes.some((scope) => scope.has(name));
  }
}

function isImplementsClause(node: ts.Node): boolean {
  return ts.isHeritageClause(node) && node.token === ts.SyntaxKind.ImplementsKeyword;
}

/** `b` in `a.b`, `a?.b` and `a['b']`; undefined for computed keys. */
function memberName(access: ts.PropertyAccessExpression | ts.ElementAccessExpression): string | undefined {
  if (ts.isPropertyAccessExpression(access)) return ts.isIdentifier(access.name) ? access.name.text : undefined;
  const key = access.argumentExpression;
  return ts.isStringLiteralLike(key) ? key.text : undefined;
}

/**
 * Whether an identifier (already known to be outside any type) reads a
 * binding. It does not when it is the name of what its parent declares or
 * names: a declaration (`const console`), a parameter, a property key or
 * member (`{ date: 1 }`, `obj.process`), an import or export alias, a label.
 */
function isValueReference(id: ts.Identifier): boolean {
  const parent = id.parent;
  // `{ console }` names the property and reads the variable of the same name.
  if (ts.isShorthandPropertyAssignment(parent) && parent.name === id) return true;
  const named = parent as { name?: ts.Node; propertyName?: ts.Node; label?: ts.Node; right?: ts.Node };
  if (named.name === id || named.propertyName === id) return false;
  if ((ts.isLabeledStatement(parent) || ts.isBreakOrContinueStatement(parent)) && named.label === id) return false;
  if (ts.isQualifiedName(parent) && parent.right === id) return false;
  return true;
}

// ---------------------------------------------------------------------------
// Scopes: which names a node declares for its children. Simple on purpose:
// block scopes, function scopes with hoisted `var`, catch and for heads.
// Ambient declarations (`declare const Date: ...`) do not count: they assert
// that a host global exists, which is what forbidden-global is about.
// ---------------------------------------------------------------------------

function declaredNames(node: ts.Node): Set<string> | undefined {
  const names = new Set<string>();
  if (ts.isSourceFile(node) || ts.isModuleBlock(node) || ts.isBlock(node) || ts.isCaseBlock(node)) {
    const statements = ts.isCaseBlock(node) ? node.clauses.flatMap((clause) => [...clause.statements]) : node.statements;
    for (const statement of statements) addStatementNames(statement, names);
    if (isFunctionScope(node)) addHoistedVars(node, names);
  } else if (ts.isFunctionLike(node)) {
    for (const parameter of node.parameters) addBindingNames(parameter.name, names);
    // A named function expression sees its own name.
    if (ts.isFunctionExpression(node) && node.name) names.add(node.name.text);
  } else if (ts.isClassExpression(node) && node.name) {
    names.add(node.name.text);
  } else if (ts.isCatchClause(node) && node.variableDeclaration) {
    addBindingNames(node.variableDeclaration.name, names);
  } else if ((ts.isForStatement(node) || ts.isForInStatement(node) || ts.isForOfStatement(node)) &&
    node.initializer && ts.isVariableDeclarationList(node.initializer)) {
    for (const declaration of node.initializer.declarations) addBindingNames(declaration.name, names);
  } else {
    return undefined;
  }
  return names;
}

function isFunctionScope(node: ts.Node): boolean {
  return ts.isSourceFile(node) || ts.isModuleBlock(node) ||
    (ts.isBlock(node) && (ts.isFunctionLike(node.parent) || ts.isClassStaticBlockDeclaration(node.parent)));
}

function addStatementNames(statement: ts.Statement, names: Set<string>): void {
  if (ts.isVariableStatement(statement)) {
    if (isAmbient(statement)) return;
    for (const declaration of statement.declarationList.declarations) addBindingNames(declaration.name, names);
  } else if (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement) ||
    ts.isEnumDeclaration(statement) || ts.isModuleDeclaration(statement)) {
    if (!isAmbient(statement) && statement.name && ts.isIdentifier(statement.name)) names.add(statement.name.text);
  } else if (ts.isImportDeclaration(statement)) {
    const clause = statement.importClause;
    if (clause?.name) names.add(clause.name.text);
    const bindings = clause?.namedBindings;
    if (bindings && ts.isNamespaceImport(bindings)) names.add(bindings.name.text);
    if (bindings && ts.isNamedImports(bindings)) for (const element of bindings.elements) names.add(element.name.text);
  } else if (ts.isImportEqualsDeclaration(statement)) {
    names.add(statement.name.text);
  }
}

/** `var` anywhere in a function body (outside nested functions) is declared for the whole body. */
function addHoistedVars(node: ts.Node, names: Set<string>): void {
  ts.forEachChild(node, function visit(child): void {
    if (ts.isFunctionLike(child) || ts.isClassStaticBlockDeclaration(child) || ts.isTypeNode(child)) return;
    if (ts.isVariableDeclarationList(child) && (child.flags & ts.NodeFlags.BlockScoped) === 0 && !isAmbient(child)) {
      for (const declaration of child.declarations) addBindingNames(declaration.name, names);
    }
    ts.forEachChild(child, visit);
  });
}

function addBindingNames(name: ts.BindingName, names: Set<string>): void {
  if (ts.isIdentifier(name)) {
    names.add(name.text);
    return;
  }
  for (const element of name.elements) {
    if (ts.isBindingElement(element)) addBindingNames(element.name, names);
  }
}
