/**
 * `holdfast sign` and `holdfast verify` read the ESP-IDF app image
 * (docs/spec/esp-app-image.md): sign refuses an invalid image, an image for
 * another chip than the board's, and versions that differ from its
 * esp_app_desc_t, each in one line (exit 1; --json error object); an
 * unknown board is bad usage (exit 2) naming boards/<id>. verify says `ok`
 * only for what the device's agent would install: a manifest signed over an
 * invalid image (made without the CLI's checks) is refused as `tampered`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { imageFile, signImage } from '../../tools/keys/image.ts';
import { ESP_CHIPS } from '../../firmware/update/esp-app-image.ts';
import { assertOneLineError, batch, BOARD, expectExit, holdfast, jsonErrorOf } from './cli-harness.ts';
import { espImage, writeEspImage } from './esp-image-fixture.ts';

describe('sign and verify read the ESP-IDF app image', () => {
  let work: string;
  let keys: string;
  let good: string;
  const file = (name: string) => join(work, name);
  const signArgs = (image: string, version: string, security: string, board = BOARD, out = `${image}.manifest`) =>
    ['sign', image, '--version', version, '--security-version', security, '--board', board, '--dir', keys, '--out', out, '--json'];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'holdfast-espimg-'));
    keys = file('keys');
    expectExit(await holdfast(['keys', 'init', '--dir', keys]), 0, 'init');
    good = file('good.bin');
    writeEspImage(good, { imageVersion: 4, securityVersion: 2 });
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  it('sign refuses, in one line with exit 1, what a device would not install', async () => {
    writeFileSync(file('random.bin'), Uint8Array.from({ length: 5000 }, (_, i) => (i * 13) & 0xff));
    writeEspImage(file('s3.bin'), { imageVersion: 4, securityVersion: 2, chipId: ESP_CHIPS.esp32s3.chipId });
    writeFileSync(file('cut.bin'), espImage({ imageVersion: 4, securityVersion: 2 }).subarray(0, 3000));
    const flipped = espImage({ imageVersion: 4, securityVersion: 2 });
    flipped[2000] ^= 0x10;
    writeFileSync(file('flipped.bin'), flipped);
    const rows: { name: string; args: string[]; says: RegExp; field: string | null }[] = [
      { name: 'not an ESP image', args: signArgs(file('random.bin'), '4', '2'), says: /random\.bin: not a valid ESP-IDF app image for esp32: bad-magic: magic 0x00, expected 0xe9$/, field: null },
      { name: 'another chip', args: signArgs(file('s3.bin'), '4', '2'), says: /s3\.bin: not a valid ESP-IDF app image for esp32: wrong-chip: image for chip id 0x0009 \(esp32s3\), this is esp32 \(0x0000\) \(board esp32-wroom-32e-4mb is esp32\)$/, field: null },
      { name: 'cut short', args: signArgs(file('cut.bin'), '4', '2'), says: /cut\.bin: not a valid ESP-IDF app image for esp32: truncated: /, field: null },
      { name: 'a flipped bit', args: signArgs(file('flipped.bin'), '4', '2'), says: /flipped\.bin: not a valid ESP-IDF app image for esp32: bad-checksum: /, field: null },
      { name: 'another security version', args: signArgs(good, '4', '3'), says: /good\.bin: --security-version 3 differs from the image's secure_version 2 \(esp_app_desc_t\): devices would refuse it$/, field: '--security-version' },
      { name: 'another version', args: signArgs(good, '5', '2'), says: /good\.bin: --version 5 differs from the image's version "4" \(esp_app_desc_t\.version, decimal for holdfast\)/, field: '--version' },
    ];
    const runs = await batch(rows.map((r) => r.args));
    rows.forEach((row, i) => {
      const run = expectExit(runs[i], 1, row.name);
      const line = assertOneLineError(run, 'sign', row.name);
      assert.match(line, row.says, row.name);
      const error = jsonErrorOf(run, row.name).error;
      assert.equal(error.code, 'invalid-file', row.name);
      assert.equal(error.field, row.field, row.name);
    });
    for (const name of ['random.bin', 's3.bin', 'cut.bin', 'flipped.bin']) assert.throws(() => readFileSync(`${file(name)}.manifest`), /ENOENT/, `${name}: no manifest written`);
  });

  it('sign refuses an unknown board as bad usage (exit 2) naming boards/<id>; the board with the image\'s chip signs', async () => {
    writeEspImage(file('s3-ok.bin'), { imageVersion: 4, securityVersion: 2, chipId: ESP_CHIPS.esp32s3.chipId });
    const [unknown, s3] = await batch([signArgs(good, '4', '2', 'esp32-nonesuch'), signArgs(file('s3-ok.bin'), '4', '2', 'esp32-s3-devkitc-1')]);
    const line = assertOneLineError(expectExit(unknown, 2, 'unknown board'), 'sign', 'unknown board');
    assert.match(line, /--board: "esp32-nonesuch": no boards\/esp32-nonesuch\/board\.json: expected one of .*esp32-devkitc/);
    assert.equal(jsonErrorOf(unknown, 'unknown board').error.code, 'usage');
    assert.equal(JSON.parse(expectExit(s3, 0, 'S3 image for the S3 board').stdout).boardId, 'esp32-s3-devkitc-1');
  });

  it('verify: ok for the signed image; tampered for a manifest signed over an image the agent refuses', async () => {
    expectExit(await holdfast(signArgs(good, '4', '2')), 0, 'sign the good image');
    // Manifests made with the signing library alone, which does not look inside the image.
    const bad = file('bad.bin');
    writeFileSync(bad, Uint8Array.from({ length: 4000 }, (_, i) => (i * 7) & 0xff));
    const badManifest = (await signImage(keys, imageFile(bad), { imageVersion: 4, securityVersion: 2, boardId: BOARD })).bytes;
    writeFileSync(`${bad}.manifest`, badManifest);
    const off = file('off-version.bin');
    writeEspImage(off, { imageVersion: 4, securityVersion: 2 });
    writeFileSync(`${off}.manifest`, (await signImage(keys, imageFile(off), { imageVersion: 5, securityVersion: 2, boardId: BOARD })).bytes);
    const s3 = file('s3-for-esp32.bin');
    writeEspImage(s3, { imageVersion: 4, securityVersion: 2, chipId: ESP_CHIPS.esp32s3.chipId });
    writeFileSync(`${s3}.manifest`, (await signImage(keys, imageFile(s3), { imageVersion: 4, securityVersion: 2, boardId: BOARD })).bytes);
    const nowhere = file('nowhere.bin');
    writeEspImage(nowhere, { imageVersion: 4, securityVersion: 2 });
    writeFileSync(`${nowhere}.manifest`, (await signImage(keys, imageFile(nowhere), { imageVersion: 4, securityVersion: 2, boardId: 'no-such-board' })).bytes);
    const verify = (image: string, ...extra: string[]) => ['verify', image, `${image}.manifest`, '--dir', keys, '--json', ...extra];
    const [ok, invalid, version, chip, unknownFlag, unknownManifest] = await batch([
      verify(good),
      verify(bad),
      verify(off),
      verify(s3),
      verify(good, '--board', 'no-such-board'),
      verify(nowhere),
    ]);
    assert.equal(JSON.parse(expectExit(ok, 0, 'good').stdout).ok, true);
    const report = (run: typeof ok, what: string) => JSON.parse(expectExit(run, 1, what).stdout) as { reason: string; message: string; authenticated: boolean };
    const r1 = report(invalid, 'not an ESP image');
    assert.equal(r1.reason, 'tampered');
    assert.equal(r1.authenticated, true);
    assert.match(r1.message, /not a valid ESP-IDF app image for esp32: bad-magic/);
    assert.match(report(version, 'version').message, /esp_app_desc_t\.version is "4", expected "5"/);
    assert.match(report(chip, 'chip').message, /wrong-chip: image for chip id 0x0009/);
    assert.match(assertOneLineError(expectExit(unknownFlag, 2, '--board unknown'), 'verify', '--board unknown'), /no boards\/no-such-board\/board\.json/);
    assert.match(assertOneLineError(expectExit(unknownManifest, 2, 'manifest names an unknown board'), 'verify', 'manifest board unknown'), /--board: "no-such-board": no boards\/no-such-board\/board\.json/);
  });
});
