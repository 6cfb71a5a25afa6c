/**
 * The replay-window models (docs/models/replay-window.md): spin checks the
 * correct model and every planted-bug variant; the stored traces are what
 * spin makes today; every stored trace replays against the TypeScript window
 * in both flash modes. What each of these means: test/models/model-suite.ts.
 */
import { replayWindow } from '../../tools/models/replay-window-models.ts';
import { describeModel } from './model-suite.ts';

describeModel(replayWindow);
