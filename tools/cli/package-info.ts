import { readFileSync } from 'node:fs';

export interface PackageInfo {
  name: string;
  version: string;
}

export const REPO_ROOT = new URL('../..', import.meta.url).pathname;

export function packageInfo(): PackageInfo {
  return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as PackageInfo;
}
