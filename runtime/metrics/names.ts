// Every metric a worker exports, by name: the one list the Grafana dashboard is generated from and
// tested against. Prometheus conventions: xattn_ prefix, base units, counters end in _total, and only
// bounded labels (rank and algorithm on every series, op on communication series).

export const METRIC = {
  stepsTotal: 'xattn_steps_total',
  stepDurationSeconds: 'xattn_step_duration_seconds',
  batchDurationSeconds: 'xattn_batch_duration_seconds',
  textTokensTotal: 'xattn_text_tokens_total',
  visualTokensTotal: 'xattn_visual_tokens_total',
  attentionTflops: 'xattn_attention_tflops',
  modelTflops: 'xattn_model_tflops',
  commBytesTotal: 'xattn_comm_bytes_total',
  commSecondsTotal: 'xattn_comm_seconds_total',
  loss: 'xattn_loss',
  learningRate: 'xattn_learning_rate',
  memoryBytes: 'xattn_memory_bytes',
  linkBytesPerSecond: 'xattn_link_bytes_per_second',
  checkpointDurationSeconds: 'xattn_checkpoint_duration_seconds',
  lastCheckpointStep: 'xattn_last_checkpoint_step',
  lastStepTimestampSeconds: 'xattn_last_step_timestamp_seconds',
  rankInfo: 'xattn_rank_info',
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** Labels on every worker series. */
export const DEFAULT_LABELS = ['rank', 'algorithm'] as const;
/** Values of the op label of the communication series. */
export const COMM_OPS = ['attention', 'all_reduce'] as const;
export type CommOpLabel = (typeof COMM_OPS)[number];
/** Extra labels of xattn_rank_info (value 1). */
export const RANK_INFO_LABELS = ['world_size', 'backend'] as const;
