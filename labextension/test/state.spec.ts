/** Unit tests of the panel's state handling (src/state.ts): no DOM, no JupyterLab. */
import {
  applyStatus,
  COLLAPSED_ROWS,
  compareChoices,
  durationText,
  elapsedSeconds,
  failureOf,
  filterSnapshots,
  Generation,
  groupChoices,
  groupDiff,
  keepSelection,
  manifestFacts,
  newProgress,
  packageNames,
  packageRows,
  progressFraction,
  progressLine,
  rowState,
  sectionTitle
} from '../src/state';
import { IChange, ISnapshotSummary } from '../src/types';

function summary(name: string, extra: Partial<ISnapshotSummary> = {}): ISnapshotSummary {
  return {
    name,
    saved: '2026-01-01T00:00:00Z',
    python: '3.11.7',
    torch: null,
    cuda: null,
    gpu: null,
    digest: 'sha256:abc',
    image: { state: 'verified', tag: `yolosnap/${name}:abc` },
    kernel_name: `yolosnap-${name}`,
    last_build: null,
    ...extra
  };
}

function change(section: string, item: string, kind: IChange['kind'] = 'changed'): IChange {
  return { section, item, old: kind === 'added' ? null : '1', new: kind === 'removed' ? null : '2', kind };
}

describe('Generation (stale replies)', () => {
  it('only the latest request is current', () => {
    const generation = new Generation();
    const first = generation.next();
    expect(generation.isCurrent(first)).toBe(true);
    const second = generation.next();
    expect(generation.isCurrent(first)).toBe(false); // a slow first reply arriving now is dropped
    expect(generation.isCurrent(second)).toBe(true);
  });
});

describe('selection', () => {
  it('is kept while the snapshot is listed, else cleared', () => {
    expect(keepSelection('a', ['a', 'b'])).toBe('a');
    expect(keepSelection('gone', ['a'])).toBeNull();
    expect(keepSelection(null, ['a'])).toBeNull();
  });
});

describe('filterSnapshots', () => {
  const list = [
    summary('train', { torch: '2.4.1', cuda: '12.4', gpu: 'NVIDIA H100' }),
    summary('cpu-base', { python: '3.12.1', image: { state: 'not built', tag: null } })
  ];
  it('keeps everything for an empty query', () => {
    expect(filterSnapshots(list, '  ').map(s => s.name)).toEqual(['train', 'cpu-base']);
  });
  it('matches names and facts, case-insensitively, every term', () => {
    expect(filterSnapshots(list, 'TRA').map(s => s.name)).toEqual(['train']);
    expect(filterSnapshots(list, 'h100').map(s => s.name)).toEqual(['train']);
    expect(filterSnapshots(list, '3.12').map(s => s.name)).toEqual(['cpu-base']);
    expect(filterSnapshots(list, 'not built').map(s => s.name)).toEqual(['cpu-base']);
    expect(filterSnapshots(list, 'train 3.12')).toEqual([]);
  });
  it('matches package names of the manifests read', () => {
    const packages = new Map([['cpu-base', ['numpy', 'six']]]);
    expect(filterSnapshots(list, 'six', packages).map(s => s.name)).toEqual(['cpu-base']);
    expect(filterSnapshots(list, 'six').map(s => s.name)).toEqual([]);
  });
});

describe('build progress from events', () => {
  it('folds phases, steps and log lines, and the server times', () => {
    let p = newProgress();
    p = applyStatus(
      p,
      {
        state: 'building',
        events: [
          { kind: 'phase', message: 'building yolosnap/x' },
          { kind: 'step', message: 'RUN pip install', step: 3, total: 8 },
          { kind: 'log', message: 'Collecting six' }
        ],
        next: 3,
        started: 1000,
        elapsed: 5
      },
      1_005_000
    );
    expect(p.phase).toBe('building yolosnap/x');
    expect(progressFraction(p)).toBeCloseTo(3 / 8);
    expect(p.log).toEqual(['building yolosnap/x', '[3/8] RUN pip install', 'Collecting six']);
    expect(p.next).toBe(3);
    expect(elapsedSeconds(p, 1_007_000)).toBeCloseTo(7);
    expect(progressLine(p, 1_007_000)).toBe('building · building yolosnap/x · step 3/8 · 7 s');
    // Only the new events come next time: they are appended.
    p = applyStatus(p, { state: 'done', events: [{ kind: 'phase', message: 'verified: yolosnap/x' }], next: 4, elapsed: 9 }, 1_009_000);
    expect(p.log).toHaveLength(4);
    expect(progressFraction(p)).toBe(1);
    expect(progressLine(p, 2_000_000)).toBe('build done · verified: yolosnap/x · 9 s');
  });

  it('is indeterminate without steps, and times from the first reply without a server start', () => {
    let p = applyStatus(newProgress(), { state: 'building', events: [], next: 0 }, 50_000);
    expect(progressFraction(p)).toBeNull();
    expect(elapsedSeconds(p, 62_000)).toBeCloseTo(12);
    p = applyStatus(p, { state: 'failed', events: [], next: 0, error: 'no base' }, 70_000);
    expect(p.error).toBe('no base');
    expect(p.elapsedS).toBeCloseTo(20);
    expect(p.finished).toBe(new Date(70_000).toISOString());
  });

  it('writes durations for people', () => {
    expect(durationText(42.4)).toBe('42 s');
    expect(durationText(185)).toBe('3 min 05 s');
    expect(durationText(3720)).toBe('1 h 02 min');
  });
});

describe('the failed state', () => {
  const failed = summary('x', {
    image: { state: 'not built', tag: null },
    last_build: { state: 'failed', error: 'base image could not be pulled', finished: '2026-01-01T01:00:00Z' }
  });

  it('reads the failure the server remembers (after a reload)', () => {
    const failure = failureOf(failed, null, new Set());
    expect(failure?.error).toBe('base image could not be pulled');
    expect(failure?.finished).toBe('2026-01-01T01:00:00Z');
    expect(rowState(failed, null)).toBe('build failed');
  });

  it("prefers this page's failed build, with its log tail", () => {
    const p = applyStatus(newProgress(), {
      state: 'failed', events: [{ kind: 'log', message: 'boom' }], next: 1, error: 'pip failed'
    }, 1000);
    const failure = failureOf(summary('y', { image: { state: 'not built', tag: null } }), p, new Set());
    expect(failure?.error).toBe('pip failed');
    expect(failure?.log).toEqual(['boom']);
  });

  it("keys this page's failure by the server's time once listed, as after a reload", () => {
    const p = applyStatus(newProgress(), { state: 'failed', events: [], next: 0, error: 'base image could not be pulled' }, 5000);
    expect(failureOf(failed, p, new Set())?.key).toBe(failureOf(failed, null, new Set())?.key);
  });

  it('is gone once dismissed, while a build runs, and once verified', () => {
    const key = failureOf(failed, null, new Set())!.key;
    expect(failureOf(failed, null, new Set([key]))).toBeNull();
    const running = applyStatus(newProgress(), { state: 'building', events: [], next: 0 }, 0);
    expect(failureOf(failed, running, new Set())).toBeNull();
    expect(rowState(failed, running)).toBe('building');
    const verified = { ...failed, image: { state: 'verified' as const, tag: 't' } };
    expect(failureOf(verified, null, new Set())).toBeNull();
    expect(rowState(verified, null)).toBe('verified');
  });

  it('a new failure is not hidden by an old dismissal', () => {
    const old = failureOf(failed, null, new Set())!.key;
    const again = { ...failed, last_build: { ...failed.last_build!, finished: '2026-01-02T00:00:00Z' } };
    expect(failureOf(again, null, new Set([old]))).not.toBeNull();
  });
});

describe('groupDiff', () => {
  const changes = [
    change('source', 'git commit'),
    ...Array.from({ length: 10 }, (_, i) => change('packages', `p${i}`)),
    change('weird', 'unknown section'),
    change('python', 'version'),
    change('env', 'HOME', 'added')
  ];

  it('orders sections as the server does, unknown ones last, with counts', () => {
    const groups = groupDiff(changes, true);
    expect(groups.map(g => g.section)).toEqual(['python', 'packages', 'env', 'source', 'weird']);
    expect(groups.find(g => g.section === 'packages')?.count).toBe(10);
  });

  it('titles sections for people', () => {
    expect(sectionTitle('gpu')).toBe('GPU');
    expect(sectionTitle('env')).toBe('Environment variables');
    expect(sectionTitle('weird')).toBe('weird');
  });

  it('changed only: no informational section, long sections collapsed', () => {
    const groups = groupDiff(changes, false);
    expect(groups.map(g => g.section)).toEqual(['python', 'packages', 'env', 'weird']);
    const packages = groups.find(g => g.section === 'packages')!;
    expect(packages.rows).toHaveLength(COLLAPSED_ROWS);
    expect(packages.hidden).toBe(10 - COLLAPSED_ROWS);
    const expanded = groupDiff(changes, false, new Set(['packages'])).find(g => g.section === 'packages')!;
    expect(expanded.rows).toHaveLength(10);
    expect(expanded.hidden).toBe(0);
  });
});

describe('manifest facts', () => {
  it('lists only the facts there are', () => {
    const facts = manifestFacts(
      { python: { version: '3.11.7', implementation: 'cpython', environment: 'venv' }, cuda: { torch: null, nvcc: null },
        gpu: { gpus: [] }, os: { pretty_name: 'Debian GNU/Linux 12 (bookworm)', libc: { name: 'glibc', version: '2.36' } } },
      summary('x')
    );
    expect(facts.map(f => f[0])).toEqual(['Python', 'OS', 'Image', 'Kernel', 'Digest']);
    expect(facts[0][1]).toBe('3.11.7 (cpython, venv)');
    expect(facts[1][1]).toBe('Debian GNU/Linux 12 (bookworm), glibc 2.36');
    expect(facts.every(([, value]) => value && value !== '-')).toBe(true);
  });

  it('gives torch, CUDA/cuDNN, the system toolkit and each GPU', () => {
    const gpu = { name: 'NVIDIA A100', compute_capability: '8.0', memory_total_mib: 40960 };
    const facts = new Map(
      manifestFacts(
        { cuda: { torch: { version: '2.4.1', cuda: '12.4', cudnn: '90100' } }, gpu: { gpus: [gpu, gpu], driver_version: '550' } },
        summary('x', { image: { state: 'building', tag: 't' } })
      )
    );
    expect(facts.get('torch')).toBe('2.4.1');
    expect(facts.get('CUDA')).toBe('12.4');
    expect(facts.get('cuDNN')).toBe('90100');
    expect(facts.get('GPU 1')).toBe('NVIDIA A100 (compute 8.0, 40 GiB)');
    expect(facts.get('Driver')).toBe('550');
    expect(facts.get('Image')).toBe('building');
    const nvcc = new Map(manifestFacts({ cuda: { torch: null, nvcc: { version: '13.0' } } }, summary('y')));
    expect(nvcc.get('CUDA')).toBe('13.0 (nvcc)');
    const built = new Map(manifestFacts({}, summary('z', {
      image: { state: 'verified', tag: 'yolosnap/z:abc', id: 'sha256:0123456789abcdef', size: 6739000000 } })));
    expect(built.get('Image')).toBe('verified (yolosnap/z:abc)');
    expect(built.get('Image id')).toBe('0123456789ab, 6.74 GB');
    expect(new Map(manifestFacts({}, summary('n'))).has('Image id')).toBe(false);
  });

  it('filters and sorts the package table', () => {
    const manifest = { packages: [{ name: 'six', version: '1.16.0', installer: 'pip' }, { name: 'numpy', version: '2.0', source: 'conda' }] };
    expect(packageRows(manifest).map(p => p.name)).toEqual(['numpy', 'six']);
    expect(packageRows(manifest, 'SI')).toEqual([{ name: 'six', version: '1.16.0', installer: 'pip' }]);
    expect(packageRows(manifest, 'numpy')[0].installer).toBe('conda');
    expect(packageNames(manifest)).toEqual(['six', 'numpy']);
    expect(packageNames({})).toEqual([]);
  });
});

describe('compare choices', () => {
  const revision = (number: number, current = false) => ({
    number, saved: '2026-01-01T00:00:00Z', digest: 'sha256:x', python: '3.11', torch: null, packages: 3, current
  });
  it('the notebook kernel, the other snapshots, then the earlier revisions newest first', () => {
    const choices = compareChoices('a', ['a', 'b', 'c'], [revision(1), revision(2), revision(3, true)]);
    expect(choices.map(c => c.ref)).toEqual(['', 'b', 'c', 'a@2', 'a@1']);
    expect(groupChoices(choices).map(([label, group]) => [label, group.length])).toEqual([
      ['', 1], ['Another snapshot', 2], ['An earlier revision', 2]
    ]);
  });
  it('is only the notebook kernel for a lone snapshot with one revision', () => {
    expect(compareChoices('a', ['a'], [revision(1, true)]).map(c => c.text)).toEqual(['the notebook kernel']);
  });
});
