// Bundles a TypeScript/JavaScript entry into one script that XS can evaluate
// (XsWorker.evaluate). See docs/design/xs-harness.md.

import * as esbuild from 'esbuild';

export interface BundleForXsOptions {
  /**
   * Identifier under which the entry's exports are published on `globalThis`.
   * Without it the bundle runs for its side effects only.
   */
  globalName?: string;
  /** esbuild `define` substitutions, e.g. `{ 'process.env.NODE_ENV': '"production"' }`. */
  define?: Record<string, string>;
  /**
   * esbuild target. Default 'es2021': XS 13.3 (xsnap 0.15.0) throws
   * `ReferenceError: Point: get ?: not initialized yet` when a class with
   * instance fields instantiates itself in a static initializer and the class
   * fields stay native (es2022+). es2021 lowers class fields, avoiding the bug.
   */
  target?: string;
  /** esbuild plugins (the tests' Moddable module emulation). */
  plugins?: esbuild.Plugin[];
}

export async function bundleForXs(entry: string, options: BundleForXsOptions = {}): Promise<string> {
  const { globalName } = options;
  if (globalName !== undefined && !/^[A-Za-z_$][\w$]*$/.test(globalName)) {
    throw new Error(`globalName must be a plain identifier, got ${JSON.stringify(globalName)}`);
  }
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'neutral',
    target: options.target ?? 'es2021',
    // An IIFE script is sloppy unless told otherwise, and sloppy XS code
    // silently ignores writes to frozen objects instead of throwing.
    banner: { js: '"use strict";' },
    // platform 'neutral' resolves nothing by default; the @noble packages are ESM with `exports`.
    mainFields: ['module', 'main'],
    conditions: ['module', 'import'],
    // XsWorker.evaluate is an indirect eval, and a strict eval keeps its
    // top-level `var`s to itself: publish the IIFE's value explicitly.
    ...(globalName !== undefined ? { globalName, footer: { js: `globalThis.${globalName} = ${globalName};` } } : {}),
    ...(options.define !== undefined ? { define: options.define } : {}),
    ...(options.plugins !== undefined ? { plugins: options.plugins } : {}),
    logLevel: 'silent',
  });
  const out = result.outputFiles[0];
  if (!out) throw new Error(`esbuild produced no output for ${entry}`);
  return out.text;
}

/**
 * Bundles `entry` as the ES module a Moddable project compiles (es2021, as
 * for the test engine): every import is bundled except `externals`, the
 * Moddable SDK's module names, which the project's manifest provides.
 * Returns the module text and the external specifiers it imports.
 */
export async function bundleForModdable(entry: string, externals: readonly string[]): Promise<{ text: string; imports: string[] }> {
  const result = await esbuild.build({
    entryPoints: [entry],
    external: [...externals],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'neutral',
    target: 'es2021',
    mainFields: ['module', 'main'],
    conditions: ['module', 'import'],
    metafile: true,
    logLevel: 'silent',
  });
  const out = result.outputFiles[0];
  if (!out) throw new Error(`esbuild produced no output for ${entry}`);
  const imports = new Set<string>();
  // '<runtime>': esbuild's own helpers, not an import.
  for (const input of Object.values(result.metafile.inputs)) for (const imp of input.imports) if (imp.external && !imp.path.startsWith('<')) imports.add(imp.path);
  return { text: out.text, imports: [...imports].sort() };
}
