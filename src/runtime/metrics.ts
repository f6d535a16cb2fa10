/** The few counters the admin listener exposes, in Prometheus text format. */

export class Metrics {
  reloadsOk = 0;
  reloadsFailed = 0;
  lastReloadOk = 1;
  configHash = '';
  loadedAt = 0;
  /** Responses by status class (index 1-5); in a worker, its row of the host's stats buffer. */
  private byClass: Float64Array;
  constructor(byClass?: Float64Array) {
    this.byClass = byClass ?? new Float64Array(6);
  }

  request(status: number): void {
    this.byClass[Math.min(5, Math.max(0, Math.floor(status / 100)))]++;
  }

  /** Responses counted so far, every class. */
  total(): number {
    let n = 0;
    for (let c = 0; c <= 5; c++) n += this.byClass[c];
    return n;
  }

  /** Prometheus exposition text. */
  render(): string {
    const lines = [
      '# HELP turnpike_config_reloads_total Config loads after startup, by result.',
      '# TYPE turnpike_config_reloads_total counter',
      `turnpike_config_reloads_total{result="success"} ${this.reloadsOk}`,
      `turnpike_config_reloads_total{result="failure"} ${this.reloadsFailed}`,
      '# HELP turnpike_config_last_reload_successful 1 when the last load succeeded.',
      '# TYPE turnpike_config_last_reload_successful gauge',
      `turnpike_config_last_reload_successful ${this.lastReloadOk}`,
      '# HELP turnpike_config_info The config in force (sha256 of the file).',
      '# TYPE turnpike_config_info gauge',
      `turnpike_config_info{hash="${this.configHash}"} 1`,
      '# HELP turnpike_config_loaded_timestamp_seconds When the config in force was loaded.',
      '# TYPE turnpike_config_loaded_timestamp_seconds gauge',
      `turnpike_config_loaded_timestamp_seconds ${(this.loadedAt / 1000).toFixed(3)}`,
      '# HELP turnpike_http_responses_total Responses by status class.',
      '# TYPE turnpike_http_responses_total counter',
    ];
    for (let c = 1; c <= 5; c++) lines.push(`turnpike_http_responses_total{class="${c}xx"} ${this.byClass[c]}`);
    return lines.join('\n') + '\n';
  }
}
