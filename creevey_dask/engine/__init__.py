"""The engine: a run over a DataFrame's partitions.

pipeline    Pipeline and Pipeline.run: validation, the scheduler, the result frame
runner      PartitionRunner: a partition's rows on a thread pool, skips, commits,
            result columns, summaries
inputs      a run's input as a frame; previous results fed back in
summary     the one-line summary, counts and error causes of a result
rows        the row context: report(), record(), reporters' result columns
progress    progress bars that never break a run
interrupt   Ctrl-C: stopping rows, cleaning temporaries
processes   the local process pool of the default strategy, forked per run
"""
