/**
 * The boot-control models (docs/models/boot-control.md): spin checks the
 * correct model (safety and `[]<> goodRunning`) and every planted-bug
 * variant; the stored traces are what spin makes today; every stored trace
 * replays against the TypeScript in both flash modes. What each of these
 * means: test/models/model-suite.ts.
 */
import { bootControl } from '../../tools/models/boot-control-models.ts';
import { describeModel } from './model-suite.ts';

describeModel(bootControl);
