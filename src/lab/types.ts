// What `outrigger lab` measures, as the JSON it writes (`--json FILE`) and the HTML report renders
// (`--html FILE`). One shape for both: the runner (src/lab/run*.ts) fills it, the report
// (src/lab/report/) only draws it. Every figure carries the method that produced it, so a reader of
// either output knows what was measured and how. Field names are snake_case: the JSON is meant for
// other tools (and is named so in the issue that asked for it).

/** The data planes compared. */
export type LabMode = 'sidecar' | 'per-host';
export const LAB_MODES: readonly LabMode[] = ['sidecar', 'per-host'];

/** A figure and how it was obtained; `value` is null when the phase could not measure it (then
 *  `method` says why). */
export interface Figure {
  readonly value: number | null;
  readonly unit: string;
  readonly method: string;
}

/** Overhead at one size: pods per node. */
export interface OverheadStep {
  readonly pods_per_node: number;
  /** Latency of the fixed-rate workload through the data plane, and without it (the same pods and
   *  load on the pod network with no proxy in the path): the difference is what the data plane adds. */
  readonly p50_ms: Figure;
  readonly p99_ms: Figure;
  readonly baseline_p50_ms: Figure;
  readonly baseline_p99_ms: Figure;
  readonly added_p50_ms: Figure;
  readonly added_p99_ms: Figure;
  /** Data-plane CPU time (user+system, from the cgroups) per request served. */
  readonly cpu_ms_per_request: Figure;
  /** Private memory (USS) of every data-plane process together, and divided by the number of pods. */
  readonly data_plane_private_mb_total: Figure;
  readonly data_plane_private_mb_per_pod: Figure;
  readonly data_plane_rss_mb_total: Figure;
  /** How many data-plane processes run at this size. */
  readonly data_plane_processes: number;
  readonly requests: number;
  readonly failed_requests: number;
}

export interface ModeResult {
  readonly mode: LabMode;
  readonly overhead: readonly OverheadStep[];
  /** 0..1: the data plane's CPU charged to the cgroups of the pods that caused it. */
  readonly attributed_cpu_share: Figure;
  /** 0..1: likewise for memory. */
  readonly attributed_memory_share: Figure;
  readonly quiet_pod_p99_ms_before: Figure;
  readonly quiet_pod_p99_ms_during_flood: Figure;
  /** Pods with at least one failed request after one data-plane process was killed (kill -9). */
  readonly blast_radius_pods: Figure;
  readonly blast_radius_failed_requests: Figure;
  /** From the first failed request to the last one, over all pods. */
  readonly blast_radius_window_ms: Figure;
  readonly upgrade_failed_requests: Figure;
  readonly upgrade_window_ms: Figure;
  /** Private keys of distinct identities held by the one data-plane process that holds the most. */
  readonly identities_per_process: Figure;
  /** The confused-deputy attempt: a connection to the data plane from one pod with another pod's
   *  address. `refused` must be true; `detail` says what happened (the error, the counter that moved). */
  readonly confused_deputy: { readonly attempted: boolean; readonly refused: boolean; readonly detail: string };
}

export interface LabReport {
  readonly version: string;
  readonly started_at: string;
  readonly finished_at: string;
  readonly quick: boolean;
  readonly machine: {
    readonly cpus: number;
    readonly cpu_model: string;
    readonly memory_gb: number;
    readonly kernel: string;
    readonly node: string;
    readonly cgroup: 'v1' | 'v2';
  };
  /** The workload both modes ran: what the pods are, the rate, the durations. */
  readonly workload: {
    readonly nodes: number;
    readonly pods_per_node_steps: readonly number[];
    readonly rate_rps: number;
    readonly duration_s: number;
    readonly description: string;
  };
  readonly modes: { readonly sidecar: ModeResult; readonly 'per-host': ModeResult };
  /** What the figures say, in sentences, each naming the mode it favours (honest where per-host wins). */
  readonly findings: readonly string[];
}
