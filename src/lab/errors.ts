// Typed errors of `outrigger lab`, with stable codes like the runtime's: a caller (the CLI, a test)
// tells a mesh that would not start from a load generator that measured nothing by code, not by
// message. docs/errors.md says what each means and what to do.
import { OutriggerError } from '../core/errors.js';

export const LabCodes = {
  /** One of the lab's meshes could not be brought up (`outrigger up` failed) or taken down cleanly. */
  MESH: 'OUTR_ERR_LAB_MESH',
  /** A load generator in a pod ended before it measured, measured nothing in time, or wrote no results. */
  LOAD: 'OUTR_ERR_LAB_LOAD',
  /** A phase could not find the data-plane process serving a pod (or any process in its cgroup), or the
   *  data plane did not come back within 90 s after the phase killed or replaced it. */
  DATA_PLANE: 'OUTR_ERR_LAB_DATA_PLANE',
} as const;

export type LabCode = (typeof LabCodes)[keyof typeof LabCodes];

export class LabError extends OutriggerError {
  declare readonly code: LabCode;
  constructor(code: LabCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'LabError';
  }
}
