"""vidswap.jobs: shot jobs split into passes for render farms.

    passes.py   the analyze / tune / render / assemble passes of one shot
    farm.py     farm export: Open Job Description (AWS Deadline Cloud), Deadline 10 job files, OpenCue outlines

Nothing is imported here, so ``import vidswap.jobs.passes`` does not pull in the farm libraries.
"""
