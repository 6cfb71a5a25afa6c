/**
 * A throwaway PKI made with openssl at test time: a CA, a server certificate
 * for 127.0.0.1/localhost, and one client certificate per identity whose
 * subject CN is the identity (mosquitto's use_identity_as_username then makes
 * the CN the username its ACL sees). EC P-256 keys: fast to make.
 *
 * Host tool (Node).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkDeviceId, findOpenssl } from './common.ts';

export interface ClientCert {
  readonly cert: string;
  readonly key: string;
}

export interface Pki {
  readonly dir: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** Per identity (device id or service username): paths of its certificate and key. */
  readonly clients: ReadonlyMap<string, ClientCert>;
}

function openssl(binary: string, args: string[], cwd: string): void {
  const run = spawnSync(binary, args, { cwd, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${(run.stderr || run.error?.message || '').trim().slice(0, 500)}`);
}

/** Make the CA, the server certificate and a client certificate for each identity under `dir`. */
export function makePki(dir: string, identities: readonly string[], days = 2): Pki {
  const found = findOpenssl();
  if (!found.ok) throw new Error(found.reason);
  const bin = found.path;
  mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(bin, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', String(days), '-subj', '/CN=holdfast test CA'], dir);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  const issue = (name: string, cn: string, ext: string) => {
    openssl(bin, ['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    openssl(bin, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', String(days), '-extfile', ext], dir);
  };
  issue('server', 'localhost', 'server.ext');
  const clients = new Map<string, ClientCert>();
  for (const id of identities) {
    checkDeviceId(id);
    issue(`client-${id}`, id, 'client.ext');
    clients.set(id, { cert: join(dir, `client-${id}.crt`), key: join(dir, `client-${id}.key`) });
  }
  return { dir, caCert: join(dir, 'ca.crt'), serverCert: join(dir, 'server.crt'), serverKey: join(dir, 'server.key'), clients };
}
