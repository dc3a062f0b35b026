"""The engine: a run over a DataFrame's partitions.

pipeline    Pipeline and Pipeline.run: validation, the scheduler, the result frame
runner      run_pipeline: a run cut into partitions, computed and gathered;
            compute_result for a lazy result
partition   PartitionRunner: a partition's rows on a thread pool, skips, commits,
            result columns
scheduling  where a run executes: the Client or the local strategy, cores, rows in
            flight, partitions
outputs     where a run writes, checked before any row (memory://, unwritable outdirs)
inputs      a run's input as a frame; previous results fed back in
summary     the one-line summary, counts and error causes of a result
rows        the row context: report(), record(), reporters' result columns
progress    progress bars that never break a run
interrupt   Ctrl-C: stopping rows, cleaning temporaries
processes   the local process pool of the default strategy, forked per run
"""
