"""Model zoo for the optimizer laboratory: small Keras models that output **logits**.

>>> from experiments.models import build_model
>>> model = build_model("cnn", (40, 1), 10)              # doctest: +SKIP
>>> loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)  # doctest: +SKIP

Every model ends in a Dense layer named ``"logits"`` *without* softmax: train with
``SparseCategoricalCrossentropy(from_logits=True)`` and take ``argmax`` for accuracy. All
layers carry stable names (``dense_1``, ``conv_2``, ``gru``, ``logits``, ...) so per-layer
gradient norms can be labelled with them; the model's name is the registry name.

Models (``build_model(name, input_shape, num_classes, **params)``)
----------------------------------------------------------------
``logreg``  Flatten -> Dense(num_classes). Multinomial logistic regression.
``mlp``     Flatten -> ``depth`` x Dense(``width``, ``activation``) -> logits; with
            ``residual=True`` every hidden layer after the first adds its input
            (``h = h + act(W h + b)``).
``cnn``     ``len(kernel_sizes)`` x [ZeroPadding(``padding``) -> Conv(``channels``, k,
            ``stride``, ``activation``)] -> Flatten -> logits. Conv1D for sequence inputs of
            rank 2 ``(length, channels)``, Conv2D (square kernels/strides) for images of
            rank 3 ``(height, width, channels)``.
``rnn``     GRU(``units``) (``bidirectional`` by default) over the time steps -> logits from
            either all time steps flattened (``readout="flatten"``) or the last state
            (``readout="last"``). Images are read row by row: ``(H, W, C)`` becomes ``H`` steps
            of ``W*C`` features.

The generic defaults use the *sizes* of the MNIST-1D benchmark (below) with Keras'
usual ``glorot_uniform`` initialisation.

MNIST-1D presets (``mnist1d_logreg``, ``mnist1d_mlp``, ``mnist1d_cnn``, ``mnist1d_gru``)
---------------------------------------------------------------------------------------
Mirror the baselines of the MNIST-1D benchmark, ``notebooks/models.py`` of
https://github.com/greydanus/mnist1d (S. Greydanus, "Scaling down deep learning", 2020;
read at commit 579085a), for 40-step inputs and 10 classes:

==================  ==============================================================  ======
preset              benchmark module                                                params
==================  ==============================================================  ======
``mnist1d_logreg``  ``LinearBase``: Linear(40, 10)                                     410
``mnist1d_mlp``     ``MLPBase``: h = relu(L1 x); h = h + relu(L2 h); L3 h; width 100  15 210
``mnist1d_cnn``     ``ConvBase``: 3 x Conv1d(25 ch, kernels 5/3/3, stride 2, pad 1),  5 210
                    ReLU, flatten (5 x 25 = 125) -> Linear(125, 10)
``mnist1d_gru``     ``GRUBase``: bidirectional GRU, hidden 6, all 40 outputs           5 134
                    flattened (480) -> Linear(480, 10)
==================  ==============================================================  ======

They differ from the generic models only in their defaults: ``residual=True`` for the MLP
(the benchmark's second layer is residual) and ``initializer="torch"``, PyTorch's default
initialisation: every Linear/Conv weight *and bias* ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
every GRU weight and bias ~ U(-1/sqrt(hidden), 1/sqrt(hidden)). Keras' GRU with
``reset_after=True`` (its default) is PyTorch's GRU formulation, with the same parameter
count. Layout differences that do not change the function class: Keras flattens conv
features length-major where PyTorch flattens channel-major.

Parameters are described by plain dataclasses (``MODEL_PARAMS[name]``) so the config layer
can validate without importing TensorFlow; ``params`` holds them and their checks,
``build`` the Keras builders (Keras imported only inside :func:`build_model`).
"""

from experiments.models.build import build_model
from experiments.models.params import (ACTIVATIONS, INITIALIZERS, MODEL_PARAMS, MODEL_NAMES,
                                       RNN_READOUTS, CNNParams, LogRegParams, MLPParams,
                                       MNIST1DCNNParams, MNIST1DGRUParams, MNIST1DLogRegParams,
                                       MNIST1DMLPParams, RNNParams, check_input_shape,
                                       check_params, resolve_params)

__all__ = ["build_model", "ACTIVATIONS", "INITIALIZERS", "MODEL_PARAMS", "MODEL_NAMES",
           "RNN_READOUTS", "CNNParams", "LogRegParams", "MLPParams", "MNIST1DCNNParams",
           "MNIST1DGRUParams", "MNIST1DLogRegParams", "MNIST1DMLPParams", "RNNParams",
           "check_input_shape", "check_params", "resolve_params"]
