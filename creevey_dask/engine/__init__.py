"""The engine: a run over a DataFrame's partitions.

pipeline    Pipeline and Pipeline.run: validation, the scheduler, the result frame
runner      PartitionRunner: a partition's rows on a thread pool, skips, commits,
            result columns, summaries
rows        the row context: report(), record(), reporters' result columns
progress    progress bars that never break a run
interrupt   Ctrl-C: stopping rows, cleaning temporaries
processes   the local process pool of the default strategy, forked per run
"""
