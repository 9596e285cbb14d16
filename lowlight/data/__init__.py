"""The data half: paired low/high images from the sources ``params.yaml`` names.

``degrade`` darkens clean photos with a physical low-light model, ``prepare`` picks
the sources and the leak-free splits, ``extra_pairs`` adds synthetic and identity
pairs to train, ``pair_writer`` writes the pairs and their manifest atomically,
``pairs`` reads them back, ``dataset_files`` lists and checks the input folders.
"""
