import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, statSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../artifacts/version.js';
import { cudaSonames, packBundle } from './build.js';
import { cudaToolkitLibDirs, findLibraries, parseLdconfig, pythonNvidiaLibDirs } from './cuda-libs.js';
import { CHECKSUMS_FILE, MANIFEST_FILE, parsePartSize, splitFile, type BundleManifest } from './parts.js';
import { envScript, fallbackPath, gpuCheckWrapperScript, wrapperScript, type BundleInfo } from './setup.js';

const root = mkdtempSync(join(tmpdir(), 'lory-bundle-test-'));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function touch(path: string): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, '');
  return path;
}

describe('bundle parts', () => {
  it('parses part sizes in binary units and refuses nonsense with the flag named', () => {
    assert.equal(parsePartSize('60M'), 60 * 1024 * 1024);
    assert.equal(parsePartSize('1G'), 1024 ** 3);
    assert.equal(parsePartSize('512k'), 512 * 1024);
    assert.equal(parsePartSize('1000'), 1000);
    for (const bad of ['0', '-5M', '60X', '', 'M']) assert.throws(() => parsePartSize(bad), /--part-size: expected a positive size/);
  });

  it('splits into parts of the chosen size whose concatenation and hashes match the original', async () => {
    const dir = mkdtempSync(join(root, 'split-'));
    const data = randomBytes(2_500_001); // not a multiple of the part size, larger than the 1 MiB read chunk
    writeFileSync(join(dir, 'payload.bin'), data);
    const parts = await splitFile(join(dir, 'payload.bin'), dir, 1_000_000);
    assert.deepEqual(parts.map((p) => p.bytes), [1_000_000, 1_000_000, 500_001]);
    assert.deepEqual(parts.map((p) => p.file), ['payload.bin.part-000', 'payload.bin.part-001', 'payload.bin.part-002']);
    const pieces = parts.map((p) => readFileSync(join(dir, p.file)));
    assert.deepEqual(parts.map((p) => p.sha256), pieces.map(sha));
    assert.ok(Buffer.concat(pieces).equals(data));
  });

  it('writes exactly one part when the file fits', async () => {
    const dir = mkdtempSync(join(root, 'one-'));
    writeFileSync(join(dir, 'p'), 'abc');
    const parts = await splitFile(join(dir, 'p'), dir, 1024);
    assert.deepEqual(parts, [{ file: 'p.part-000', bytes: 3, sha256: sha(Buffer.from('abc')) }]);
  });
});

describe('CUDA library finder', () => {
  it('reads x86-64 entries of ldconfig -p and ignores the 32-bit ones', () => {
    const text = [
      '123 libs found in cache `/etc/ld.so.cache\'',
      '\tlibcublas.so.13 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcublas.so.13',
      '\tlibcuda.so.1 (libc6) => /usr/lib/i386-linux-gnu/libcuda.so.1',
      '\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1',
    ].join('\n');
    assert.deepEqual(
      [...parseLdconfig(text)],
      [
        ['libcublas.so.13', '/usr/lib/x86_64-linux-gnu/libcublas.so.13'],
        ['libcuda.so.1', '/usr/lib/x86_64-linux-gnu/libcuda.so.1'],
      ],
    );
  });

  it('lists toolkit folders (the cuda link first, then newest version) and python nvidia/*/lib folders that exist', () => {
    const prefix = mkdtempSync(join(root, 'usr-local-'));
    for (const d of ['cuda-12.4/lib64', 'cuda-13.0/lib64', 'cuda/lib64', 'cuda-13.0/targets/x86_64-linux/lib', 'cudnn-junk']) mkdirSync(join(prefix, d), { recursive: true });
    assert.deepEqual(cudaToolkitLibDirs(prefix), [
      join(prefix, 'cuda/lib64'),
      join(prefix, 'cuda-13.0/lib64'),
      join(prefix, 'cuda-13.0/targets/x86_64-linux/lib'),
      join(prefix, 'cuda-12.4/lib64'),
    ]);
    const sp = mkdtempSync(join(root, 'site-packages-'));
    for (const d of ['nvidia/cublas/lib', 'nvidia/cu13/lib', 'nvidia/nccl/include']) mkdirSync(join(sp, d), { recursive: true });
    assert.deepEqual(pythonNvidiaLibDirs([sp, join(root, 'no-such-site-packages')]), [join(sp, 'nvidia/cu13/lib'), join(sp, 'nvidia/cublas/lib')]);
  });

  it('finds each soname in search order and puts only non-system folders on LD_LIBRARY_PATH', () => {
    const tree = mkdtempSync(join(root, 'tree-'));
    const user = join(tree, 'user');
    const cuda = join(tree, 'cuda/lib64');
    const py = join(tree, 'nvidia/cudnn/lib');
    touch(join(user, 'libcurand.so.10'));
    touch(join(cuda, 'libcurand.so.10')); // shadowed by LD_LIBRARY_PATH
    touch(join(cuda, 'libcublas.so.13'));
    touch(join(py, 'libcublas.so.13')); // shadowed by the toolkit
    touch(join(py, 'libcudnn.so.9'));
    const result = findLibraries(['libcuda.so.1', 'libcurand.so.10', 'libcublas.so.13', 'libcudnn.so.9', 'libnccl.so.2'], {
      ldLibraryPath: ['', user],
      ldconfig: new Map([['libcuda.so.1', '/usr/lib/x86_64-linux-gnu/libcuda.so.1']]),
      cudaDirs: [cuda],
      pythonDirs: [py],
    });
    assert.deepEqual(result.found, {
      'libcuda.so.1': { path: '/usr/lib/x86_64-linux-gnu/libcuda.so.1', source: 'system' },
      'libcurand.so.10': { path: join(user, 'libcurand.so.10'), source: 'LD_LIBRARY_PATH' },
      'libcublas.so.13': { path: join(cuda, 'libcublas.so.13'), source: 'cuda-toolkit' },
      'libcudnn.so.9': { path: join(py, 'libcudnn.so.9'), source: 'python' },
    });
    assert.deepEqual(result.missing, ['libnccl.so.2']);
    assert.deepEqual(result.libraryPath, [user, cuda, py]);
  });

  it('picks the CUDA sonames out of a DT_NEEDED list', () => {
    const needed = ['libcublasLt.so.13', 'libcublas.so.13', 'libcurand.so.10', 'libcudart.so.13', 'libcuda.so.1', 'libdl.so.2', 'libstdc++.so.6', 'libc.so.6'];
    assert.deepEqual(cudaSonames(needed), ['libcublasLt.so.13', 'libcublas.so.13', 'libcurand.so.10', 'libcudart.so.13', 'libcuda.so.1']);
  });
});

describe('env file and wrapper', () => {
  it('sets LORY_ORT_LIBRARY, LD_LIBRARY_PATH (bundled ORT first) and PATH; a sourced env.sh gives those values', () => {
    const dir = '/opt/lory bundle';
    const env = envScript(dir, ['/usr/local/cuda/lib64', '/py/nvidia/cudnn/lib']);
    const file = join(root, 'env.sh');
    writeFileSync(file, env);
    const r = spawnSync('sh', ['-c', `LD_LIBRARY_PATH=/keep PATH=/usr/bin:/bin; . '${file}'; printf '%s\\n' "$LORY_ORT_LIBRARY" "$LD_LIBRARY_PATH" "$PATH"`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      '/opt/lory bundle/ort/lib/libonnxruntime.so',
      '/opt/lory bundle/ort/lib:/usr/local/cuda/lib64:/py/nvidia/cudnn/lib:/keep',
      '/opt/lory bundle/bin:/opt/lory bundle/node/bin:/usr/bin:/bin',
    ]);
    assert.match(wrapperScript(dir), /^#!\/bin\/sh\n\. '\/opt\/lory bundle\/env\.sh'\nexec '\/opt\/lory bundle\/node\/bin\/node' '\/opt\/lory bundle\/lory\/bin\/lory' "\$@"\n$/);
    assert.equal(gpuCheckWrapperScript(dir), "#!/bin/sh\n. '/opt/lory bundle/env.sh'\nexec '/opt/lory bundle/lory/bin/gpu-check' \"$@\"\n");
    assert.throws(() => envScript("/tmp/it's", []), /must not contain quotes/);
  });

  it('adds the fallback lib/ folder only when the system lacks one of those libraries', () => {
    const info = { fallbackLibraries: ['libopenblas.so.0', 'libgomp.so.1'] } as BundleInfo;
    const both = new Map([['libopenblas.so.0', '/x'], ['libgomp.so.1', '/y']]);
    assert.deepEqual(fallbackPath('/b', info, both), []);
    assert.deepEqual(fallbackPath('/b', info, new Map([['libgomp.so.1', '/y']])), ['/b/lib']);
  });
});

/**
 * install.sh end to end on a small payload with the real bundle layout: node/bin/node runs this
 * Node, lory/ links to this checkout (built dist/), a fake CUDA library stands for the machine's.
 */
describe('install.sh', () => {
  const fakeCuda = join(root, 'fake-cuda');
  touch(join(fakeCuda, 'libfakecublas.so.13'));

  async function makeBundle(partSize: number): Promise<{ out: string; manifest: BundleManifest }> {
    const staging = mkdtempSync(join(root, 'staging-'));
    mkdirSync(join(staging, 'node', 'bin'), { recursive: true });
    writeFileSync(join(staging, 'node', 'bin', 'node'), `#!/bin/sh\nexec '${process.execPath}' "$@"\n`);
    chmodSync(join(staging, 'node', 'bin', 'node'), 0o755);
    symlinkSync(PROJECT_ROOT, join(staging, 'lory'));
    mkdirSync(join(staging, 'ort', 'lib'), { recursive: true });
    writeFileSync(join(staging, 'ort', 'lib', 'libonnxruntime.so'), randomBytes(300_000)); // incompressible: several parts
    const info: BundleInfo = { cudaRequired: ['libfakecublas.so.13'], cudaOptional: ['libfakenccl.so.2'], fallbackLibraries: [] };
    writeFileSync(join(staging, 'bundle.json'), JSON.stringify(info));
    const out = mkdtempSync(join(root, 'out-'));
    const manifest = await packBundle(staging, out, partSize, info);
    return { out, manifest };
  }

  function install(out: string, target: string) {
    return spawnSync('bash', [join(out, 'install.sh'), target, '--no-cuda-build'], {
      encoding: 'utf8',
      env: { ...process.env, LD_LIBRARY_PATH: fakeCuda },
    });
  }

  it('packs a manifest, SHA256SUMS and install.sh beside the parts; installs; the wrapper runs lory', async () => {
    const { out, manifest } = await makeBundle(100_000);
    assert.ok(manifest.parts.length >= 3, `parts: ${manifest.parts.length}`);
    assert.equal(manifest.parts.reduce((s, p) => s + p.bytes, 0), manifest.payload.bytes);
    assert.deepEqual(JSON.parse(readFileSync(join(out, MANIFEST_FILE), 'utf8')).parts, manifest.parts);
    assert.equal(readFileSync(join(out, CHECKSUMS_FILE), 'utf8').trim().split('\n').length, manifest.parts.length);
    assert.ok(!existsSync(join(out, 'lory-bundle.tar.gz')), 'the joined payload is not kept beside its parts');

    const target = join(root, 'installed', 'lory');
    const r = install(out, target);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /libfakecublas\.so\.13\s+\S+fake-cuda\/libfakecublas\.so\.13 \(LD_LIBRARY_PATH\)/);
    assert.match(r.stdout, /libfakenccl\.so\.2\s+NOT FOUND \(optional\)/);
    assert.match(readFileSync(join(target, 'env.sh'), 'utf8'), new RegExp(`LD_LIBRARY_PATH='${target}/ort/lib:${fakeCuda}'`));
    assert.equal(readFileSync(join(target, 'ort', 'lib', 'libonnxruntime.so')).length, 300_000);
    assert.deepEqual(readdirSync(join(root, 'installed')), ['lory'], 'no temp folder left');
    assert.equal(readFileSync(join(target, 'bin', 'gpu-check'), 'utf8'), gpuCheckWrapperScript(target));
    assert.equal(statSync(join(target, 'bin', 'gpu-check')).mode & 0o111, 0o111, 'bin/gpu-check is executable');
    const version = spawnSync(join(target, 'bin', 'lory'), ['--version'], { encoding: 'utf8' });
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')).version);
  });

  it('refuses a corrupt part, a missing part and an existing target: exit 2, one line, nothing written', async () => {
    const { out, manifest } = await makeBundle(100_000);
    const target = join(root, 'refused', 'lory');
    const part1 = join(out, manifest.parts[1]!.file);
    const original = readFileSync(part1);
    const flipped = Buffer.from(original);
    flipped[10] = flipped[10]! ^ 1;
    const cases: Array<[string, () => void, () => void, RegExp]> = [
      ['corrupt', () => writeFileSync(part1, flipped), () => writeFileSync(part1, original), new RegExp(`${manifest.parts[1]!.file}: checksum mismatch`)],
      ['missing', () => rmSync(part1), () => writeFileSync(part1, original), new RegExp(`${manifest.parts[1]!.file} is missing`)],
      ['exists', () => mkdirSync(target, { recursive: true }), () => rmSync(target, { recursive: true }), /already exists/],
    ];
    for (const [name, breakIt, repair, message] of cases) {
      breakIt();
      const r = install(out, target);
      repair();
      assert.equal(r.status, 2, `${name}: ${r.stderr}`);
      assert.match(r.stderr, message, name);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line`);
      assert.deepEqual(existsSync(join(root, 'refused')) ? readdirSync(join(root, 'refused')) : [], [], `${name}: nothing written`);
    }
  });

  it('refuses parts joined in the wrong order (each part intact, the payload not)', async () => {
    const { out, manifest } = await makeBundle(100_000);
    const sums = readFileSync(join(out, CHECKSUMS_FILE), 'utf8').trim().split('\n');
    writeFileSync(join(out, CHECKSUMS_FILE), `${[sums[1], sums[0], ...sums.slice(2)].join('\n')}\n`);
    const r = install(out, join(root, 'reordered'));
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /parts out of order or from different bundles/);
    assert.ok(!existsSync(join(root, 'reordered')));
    assert.ok(manifest.parts.length >= 2);
  });
});

describe('bin/bundle and the setup step refuse bad input (exit 2, one line, before any download)', () => {
  const rows: Array<[string, string[], RegExp]> = [
    ['bin/bundle', ['--part-size', '60X'], /^lory bundle: --part-size: expected a positive size such as 60M, 1G or 512K, got '60X'$/],
    ['bin/bundle', ['--out', root], /^lory bundle: --out \S+ already exists: give a new folder/],
    ['bin/bundle', ['--colour'], /^lory bundle: unknown option --colour \(known: --out DIR, --part-size SIZE\)$/],
    ['dist/src/bundle/setup.js', ['--root', root], /^lory bundle setup: \S+bundle\.json not found: --root must be an unpacked lory bundle$/],
  ];
  for (const [script, args, message] of rows) {
    it(`${script} ${args.join(' ')}`, () => {
      const r = spawnSync(process.execPath, [join(PROJECT_ROOT, script), ...args], { encoding: 'utf8' });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr.trim(), message);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.equal(r.stdout, '');
    });
  }
});
