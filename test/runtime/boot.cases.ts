/**
 * The boot sequence's vocabulary (firmware/runtime/boot.ts) in Node and XS:
 * the failure table's shape, audit tokens, every update-agent event mapped
 * to an audit event that encodes, and the audit key's derivation.
 */
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { ENVELOPE_HKDF_SALT, hkdfExpand, hkdfExtract, keyInfo } from '../../firmware/security/envelope-keys.ts';
import { encodeAuditEvent, decodeAuditEvent } from '../../firmware/storage/audit-log.ts';
import type { UpdateAuditEvent } from '../../firmware/update/audit.ts';
import { AUDIT_KEY_LABEL, auditOfUpdate, auditToken, BOOT_FAILURES, BOOT_STAGES, deriveAuditKey, failureBit } from '../../firmware/runtime/boot.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import { TEST_DEVICE_ID, TEST_KEY_ID, testSecret } from '../support/test-device.ts';
import type { CaseSuite, FirmwareCase } from '../support/cases.ts';

const UPDATE_EVENTS: readonly UpdateAuditEvent[] = [
  { kind: 'update-rejected', reason: 'old-version', message: 'm' },
  { kind: 'update-staged', imageVersion: 3, securityVersion: 2, slot: 1, resumedAtChunk: 4 },
  { kind: 'trial-started', imageVersion: undefined, slot: 1 },
  { kind: 'update-committed', imageVersion: 3, securityVersion: 2, slot: 1 },
  { kind: 'update-rolled-back', imageVersion: 3, reason: 'self-test passed: self-test failed' },
  { kind: 'rollback-impossible', imageVersion: undefined, reason: 'no slot', message: 'm' },
  { kind: 'unconfirmed-valid', imageVersion: 3, slot: 0 },
  { kind: 'store-unreadable', store: 'staging-progress', code: 'damaged', message: 'm' },
  { kind: 'root-rotated', fromVersion: 1, toVersion: 2 },
  { kind: 'root-rejected', reason: 'threshold', message: 'm' },
];

const cases: FirmwareCase[] = [
  {
    name: 'failure table: unique codes, at most 32 (one health-record bit each), every stage known, bits in table order',
    run() {
      const codes = new Set(BOOT_FAILURES.map((r) => r.code));
      equal(codes.size, BOOT_FAILURES.length, 'unique codes');
      ok(BOOT_FAILURES.length <= 32, 'fits a u32');
      for (const [i, r] of BOOT_FAILURES.entries()) {
        ok((BOOT_STAGES as readonly string[]).includes(r.stage), `${r.code}: stage ${r.stage}`);
        equal(failureBit(r.code) >>> 0, 2 ** i, `${r.code}: bit ${i}`);
        ok(/^[a-z0-9._-]{1,24}$/.test(r.store), `${r.code}: store token ${r.store}`);
      }
      throws(() => failureBit('nope' as never), 'RangeError', 'unknown code');
    },
  },
  {
    name: 'audit tokens: lower case, [a-z0-9._-], at most 24 bytes, never empty',
    run() {
      equal(auditToken('Self-test passed: self-test failed'), 'self-test-passed-self-te', 'truncated at 24');
      equal(auditToken('format-too-new'), 'format-too-new', 'kept');
      equal(auditToken('  '), 'unknown', 'empty becomes unknown');
      equal(auditToken('a  b!!c'), 'a-b-c', 'runs of others become one dash');
      equal(auditToken('x: '), 'x', 'no trailing dash');
    },
  },
  {
    name: 'every update-agent event maps to an audit event that encodes and decodes back',
    run() {
      const kinds: string[] = [];
      for (const event of UPDATE_EVENTS) {
        const audit = auditOfUpdate(event);
        const { code, body } = encodeAuditEvent(audit);
        const back = decodeAuditEvent(code, body);
        equal(back.kind, audit.kind, `${event.kind}: round trip`);
        kinds.push(audit.kind);
      }
      equal(kinds.join(','), 'update-refused,update-staged,trial-started,update-committed,update-rolled-back,rollback-impossible,unconfirmed-valid,store-unreadable,key-rotated,update-refused', 'the mapping of audit-log.md');
      throws(() => auditOfUpdate({ kind: 'bogus' } as unknown as UpdateAuditEvent), 'RangeError', 'unknown event');
    },
  },
  {
    name: 'the audit key is HKDF-SHA-256 of the device secret with the envelope salt and the label holdfast/v1/audit/hmac-sha256',
    run() {
      const crypto = createNobleCrypto();
      const key = deriveAuditKey(crypto, testSecret(), TEST_DEVICE_ID, TEST_KEY_ID);
      equal(key.length, 32, '32 bytes');
      const salt = Uint8Array.from(ENVELOPE_HKDF_SALT, (c) => c.charCodeAt(0));
      const expected = hkdfExpand(crypto, hkdfExtract(crypto, salt, testSecret()), keyInfo(AUDIT_KEY_LABEL, TEST_DEVICE_ID, TEST_KEY_ID), 32);
      bytesEqual(key, expected, 'derivation');
      const other = deriveAuditKey(crypto, testSecret(0x12), TEST_DEVICE_ID, TEST_KEY_ID);
      ok(other.some((b, i) => b !== key[i]), 'another secret, another key');
    },
  },
];

export const suite: CaseSuite = { name: 'runtime boot vocabulary', cases };
