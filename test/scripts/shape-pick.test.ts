// bench:gpu's --kernel-shapes / --dist-shapes: the shapes an experiment runs, by index.
import { describe, expect, it } from 'vitest';
import { pickShapes } from '../../bench/shape-pick.js';

const SHAPES = ['1024x64K', '256x128K', '4096x32K'];

describe('pickShapes', () => {
  it('runs every shape in order when the flag is absent', () => {
    expect(pickShapes(undefined, SHAPES, 'dist-shapes')).toEqual(SHAPES);
  });

  it('runs the named shapes in the order given, repeats included', () => {
    expect(pickShapes('1', SHAPES, 'dist-shapes')).toEqual(['256x128K']);
    expect(pickShapes('2,0,2', SHAPES, 'kernel-shapes')).toEqual(['4096x32K', '1024x64K', '4096x32K']);
  });

  it('rejects what names no shape, naming the flag and the range', () => {
    for (const bad of ['3', '-1', '1.5', 'a', '', '0,,1'])
      expect(() => pickShapes(bad, SHAPES, 'dist-shapes'), bad).toThrow(`--dist-shapes ${bad}: expected indices from 0 to 2`);
  });
});
