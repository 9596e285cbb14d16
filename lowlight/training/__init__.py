"""Training the network: data, losses and the loop in named steps.

``data`` cuts training crops and loads validation images, ``losses`` holds the
losses by name, ``build`` sets a run up (model, optimiser, data, resume),
``state`` the loop state and run objects, ``loop`` the steps (epoch, validate,
checkpoint, finish) and ``outputs`` the files and plots a run writes.
"""
