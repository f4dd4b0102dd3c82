"""Face encoders as plain Keras 3 models (channels-last, no Lambda layers).

``openface_nn4_small2`` is OpenFace's smaller encoder, for comparison only (no
weights for it are shipped).

``inception_resnet_v1`` is the network of David Sandberg's FaceNet models, laid
out as in his ``inception_resnet_v1.py``. Layer names are the TensorFlow scopes
of the original graph with ``/`` written as ``.`` (Keras 3 forbids ``/`` in a
layer name): the graph's ``InceptionResnetV1/Repeat/block35_1/Branch_0/Conv2d_1x1``
is the layer ``Repeat.block35_1.Branch_0.Conv2d_1x1``.

Batch normalisation of the convolutions is folded into each convolution's bias,
as in the frozen graph the weights come from; only the bottleneck keeps its
``BatchNormalization`` layer.
"""

from __future__ import annotations

import keras
from keras import layers

#: Joins TensorFlow scope names into a Keras layer name.
SEP = "."


def _name(*scopes: str) -> str:
    return SEP.join(scopes)


def _conv(x, filters: int, kernel, name: str, strides: int = 1, padding: str = "same"):
    """Convolution + folded batch norm (as a bias) + ReLU: one slim ``conv2d``."""
    return layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, activation="relu", name=name
    )(x)


def _residual(x, mixed, scale: float, scope: str, activation: bool = True):
    """x + scale * Conv1x1(mixed), then ReLU: the tail of every Inception-ResNet block."""
    up = layers.Conv2D(x.shape[-1], 1, padding="same", name=_name(scope, "Conv2d_1x1"))(mixed)
    up = layers.Rescaling(scale, name=_name(scope, "mul"))(up)
    x = layers.Add(name=_name(scope, "add"))([x, up])
    if activation:
        x = layers.ReLU(name=_name(scope, "Relu"))(x)
    return x


def _block35(x, scope: str, scale: float = 0.17):
    """Inception-ResNet-A, 35x35 grid (17x17 for 160x160 input)."""
    b0 = _conv(x, 32, 1, _name(scope, "Branch_0", "Conv2d_1x1"))
    b1 = _conv(x, 32, 1, _name(scope, "Branch_1", "Conv2d_0a_1x1"))
    b1 = _conv(b1, 32, 3, _name(scope, "Branch_1", "Conv2d_0b_3x3"))
    b2 = _conv(x, 32, 1, _name(scope, "Branch_2", "Conv2d_0a_1x1"))
    b2 = _conv(b2, 32, 3, _name(scope, "Branch_2", "Conv2d_0b_3x3"))
    b2 = _conv(b2, 32, 3, _name(scope, "Branch_2", "Conv2d_0c_3x3"))
    mixed = layers.Concatenate(name=_name(scope, "concat"))([b0, b1, b2])
    return _residual(x, mixed, scale, scope)


def _block17(x, scope: str, scale: float = 0.10):
    """Inception-ResNet-B, 17x17 grid (8x8 for 160x160 input)."""
    b0 = _conv(x, 128, 1, _name(scope, "Branch_0", "Conv2d_1x1"))
    b1 = _conv(x, 128, 1, _name(scope, "Branch_1", "Conv2d_0a_1x1"))
    b1 = _conv(b1, 128, (1, 7), _name(scope, "Branch_1", "Conv2d_0b_1x7"))
    b1 = _conv(b1, 128, (7, 1), _name(scope, "Branch_1", "Conv2d_0c_7x1"))
    mixed = layers.Concatenate(name=_name(scope, "concat"))([b0, b1])
    return _residual(x, mixed, scale, scope)


def _block8(x, scope: str, scale: float = 0.20, activation: bool = True):
    """Inception-ResNet-C, 8x8 grid (3x3 for 160x160 input)."""
    b0 = _conv(x, 192, 1, _name(scope, "Branch_0", "Conv2d_1x1"))
    b1 = _conv(x, 192, 1, _name(scope, "Branch_1", "Conv2d_0a_1x1"))
    b1 = _conv(b1, 192, (1, 3), _name(scope, "Branch_1", "Conv2d_0b_1x3"))
    b1 = _conv(b1, 192, (3, 1), _name(scope, "Branch_1", "Conv2d_0c_3x1"))
    mixed = layers.Concatenate(name=_name(scope, "concat"))([b0, b1])
    return _residual(x, mixed, scale, scope, activation=activation)


def _reduction_a(x, scope: str = "Mixed_6a"):
    b0 = _conv(x, 384, 3, _name(scope, "Branch_0", "Conv2d_1a_3x3"), strides=2, padding="valid")
    b1 = _conv(x, 192, 1, _name(scope, "Branch_1", "Conv2d_0a_1x1"))
    b1 = _conv(b1, 192, 3, _name(scope, "Branch_1", "Conv2d_0b_3x3"))
    b1 = _conv(b1, 256, 3, _name(scope, "Branch_1", "Conv2d_1a_3x3"), strides=2, padding="valid")
    b2 = layers.MaxPooling2D(3, strides=2, padding="valid", name=_name(scope, "Branch_2", "MaxPool_1a_3x3"))(x)
    return layers.Concatenate(name=_name(scope, "concat"))([b0, b1, b2])


def _reduction_b(x, scope: str = "Mixed_7a"):
    b0 = _conv(x, 256, 1, _name(scope, "Branch_0", "Conv2d_0a_1x1"))
    b0 = _conv(b0, 384, 3, _name(scope, "Branch_0", "Conv2d_1a_3x3"), strides=2, padding="valid")
    b1 = _conv(x, 256, 1, _name(scope, "Branch_1", "Conv2d_0a_1x1"))
    b1 = _conv(b1, 256, 3, _name(scope, "Branch_1", "Conv2d_1a_3x3"), strides=2, padding="valid")
    b2 = _conv(x, 256, 1, _name(scope, "Branch_2", "Conv2d_0a_1x1"))
    b2 = _conv(b2, 256, 3, _name(scope, "Branch_2", "Conv2d_0b_3x3"))
    b2 = _conv(b2, 256, 3, _name(scope, "Branch_2", "Conv2d_1a_3x3"), strides=2, padding="valid")
    b3 = layers.MaxPooling2D(3, strides=2, padding="valid", name=_name(scope, "Branch_3", "MaxPool_1a_3x3"))(x)
    return layers.Concatenate(name=_name(scope, "concat"))([b0, b1, b2, b3])


def inception_resnet_v1(
    input_size: int = 160, embedding_size: int = 512, name: str = "InceptionResnetV1"
) -> keras.Model:
    """Inception-ResNet-v1 face encoder, untrained (see ``fr_utils.load_facenet``).

    Args:
        input_size: side of the square input; the bundled weights use 160.
        embedding_size: length of the embedding (the bottleneck); 512 for the weights of
            20180408-102900, 128 for those of the default encoder, 20170512-110547.
        name: the model's name.
    Returns:
        A ``keras.Model`` mapping (m, input_size, input_size, 3) float32 images,
        standardised as its weights were trained (``fixed_image_standardization`` for
        20180408-102900, ``prewhiten`` for 20170512-110547), to (m, embedding_size)
        L2-normalised embeddings. 23,468,848 parameters at the defaults.
    """
    inputs = keras.Input((input_size, input_size, 3), name="input")
    x = _conv(inputs, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
    x = _conv(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
    x = _conv(x, 64, 3, "Conv2d_2b_3x3")
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="MaxPool_3a_3x3")(x)
    x = _conv(x, 80, 1, "Conv2d_3b_1x1", padding="valid")
    x = _conv(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
    x = _conv(x, 256, 3, "Conv2d_4b_3x3", strides=2, padding="valid")
    for i in range(1, 6):
        x = _block35(x, _name("Repeat", f"block35_{i}"))
    x = _reduction_a(x)
    for i in range(1, 11):
        x = _block17(x, _name("Repeat_1", f"block17_{i}"))
    x = _reduction_b(x)
    for i in range(1, 6):
        x = _block8(x, _name("Repeat_2", f"block8_{i}"))
    x = _block8(x, "Block8", scale=1.0, activation=False)
    x = layers.AveragePooling2D(tuple(x.shape[1:3]), padding="valid", name=_name("Logits", "AvgPool_1a_8x8"))(x)
    x = layers.Flatten(name=_name("Logits", "Flatten"))(x)
    x = layers.Dense(embedding_size, use_bias=False, name="Bottleneck")(x)
    x = layers.BatchNormalization(epsilon=1e-3, scale=False, name=_name("Bottleneck", "BatchNorm"))(x)
    outputs = layers.UnitNormalization(name="embeddings")(x)
    return keras.Model(inputs, outputs, name=name)


# --------------------------------------------------------------------------
# OpenFace nn4.small2
# --------------------------------------------------------------------------


def _conv_bn(x, filters: int, kernel, name: str, strides: int = 1, padding: str = "same"):
    """Convolution, batch norm, ReLU: one ``SpatialConvolution``/``SpatialBatchNormalization``/
    ``ReLU`` triple of OpenFace's Torch definition."""
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, name=_name(name, "conv"))(x)
    x = layers.BatchNormalization(epsilon=1e-5, name=_name(name, "bn"))(x)
    return layers.ReLU(name=_name(name, "relu"))(x)


def _l2_pool(x, name: str):
    """Torch's ``SpatialLPPooling(p=2, 3x3, stride 1)``: sqrt of the sum of squares
    over each 3x3 window, without padding (the map shrinks by 2 on each axis).

    Square, average, times 9, square root: Keras layers and the built-in
    ``keras.ops.sqrt`` operation (serialised by Keras itself, no custom code).
    The offset of 1e-12 keeps the gradient of the root finite on all-zero windows.
    """
    squared = layers.Multiply(name=_name(name, "square"))([x, x])
    mean = layers.AveragePooling2D(3, strides=1, padding="valid", name=_name(name, "avg"))(squared)
    summed = layers.Rescaling(9.0, offset=1e-12, name=_name(name, "sum"))(mean)
    return keras.ops.sqrt(summed)


def _inception(x, name: str, branches: dict, pool: str, pool_proj: int | None = None,
               strides: int = 1):
    """One ``nn.Inception`` module of OpenFace (dpnn), batch norm after every convolution.

    ``branches`` maps a kernel size (3, 5) to ``(reduce_filters, filters)``: a 1x1
    reduction then the kxk convolution with ``strides``; the key 1 maps to the
    filters of the plain 1x1 branch. ``pool`` is ``"max"`` (3x3, padded) or
    ``"l2"`` (3x3 L2 pooling, unpadded), optionally followed by a 1x1 projection
    to ``pool_proj`` filters. Branches whose maps come out smaller are zero-padded
    around, as Torch's ``DepthConcat`` centres them.
    """
    outputs = []
    for kernel in (3, 5):
        if kernel in branches:
            reduce_filters, filters = branches[kernel]
            b = _conv_bn(x, reduce_filters, 1, _name(name, f"{kernel}x{kernel}_reduce"))
            b = _conv_bn(b, filters, kernel, _name(name, f"{kernel}x{kernel}"), strides=strides)
            outputs.append(b)
    if pool == "max":
        p = layers.MaxPooling2D(3, strides=strides, padding="same", name=_name(name, "pool"))(x)
    else:
        p = _l2_pool(x, _name(name, "pool"))
    if pool_proj:
        p = _conv_bn(p, pool_proj, 1, _name(name, "pool_proj"))
    target = outputs[0].shape[1]
    if p.shape[1] != target:
        missing = target - p.shape[1]
        p = layers.ZeroPadding2D(
            ((missing // 2, missing - missing // 2),) * 2, name=_name(name, "pool_pad")
        )(p)
    outputs.append(p)
    if 1 in branches:
        outputs.append(_conv_bn(x, branches[1], 1, _name(name, "1x1")))
    return layers.Concatenate(name=_name(name, "concat"))(outputs)


def openface_nn4_small2(input_size: int = 96, embedding_size: int = 128,
                        name: str = "OpenFace_nn4_small2") -> keras.Model:
    """OpenFace's nn4.small2 face encoder (Amos et al., 2016), untrained.

    Rebuilt in Keras from OpenFace's Torch definition, ``models/openface/nn4.small2.def.lua``:
    a 7x7 stem, two convolutions, then the Inception modules 3a, 3b, 3c, 4a, 4e,
    5a and 5b, average pooling, a dense layer to ``embedding_size`` and L2
    normalisation. This is the encoder of the original Coursera face-recognition
    assignment, whose Keras port reports 3,743,280 parameters at the defaults
    (``FRmodel.count_params()``); ``tests/test_models.py`` checks this count.
    The local response normalisation layers of the Torch model hold no weights
    and are left out, as in that port. The feature maps have OpenFace's sizes,
    but Keras' ``"same"`` padding puts the odd pixel of a stride-2 layer at the
    bottom and right where Torch pads both sides equally: with OpenFace's weights
    (were they available) the outputs would differ slightly from OpenFace's own.

    **No weights are shipped for it**: OpenFace's trained weights
    (``nn4.small2.v1.t7``) cannot be obtained in this environment, so this model
    only serves to compare architectures; nothing in ``fr_utils`` loads weights
    into it. Its outputs are those of random initial weights.

    Args:
        input_size: side of the square RGB input; OpenFace uses 96.
        embedding_size: length of the embedding; OpenFace uses 128.
        name: the model's name.
    Returns:
        A ``keras.Model`` mapping (m, input_size, input_size, 3) float32 images
        to (m, embedding_size) L2-normalised embeddings.
    """
    inputs = keras.Input((input_size, input_size, 3), name="input")
    x = _conv_bn(inputs, 64, 7, "conv1", strides=2)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = _conv_bn(x, 64, 1, "conv2")
    x = _conv_bn(x, 192, 3, "conv3")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    x = _inception(x, "inception_3a", {3: (96, 128), 5: (16, 32), 1: 64}, "max", pool_proj=32)
    x = _inception(x, "inception_3b", {3: (96, 128), 5: (32, 64), 1: 64}, "l2", pool_proj=64)
    x = _inception(x, "inception_3c", {3: (128, 256), 5: (32, 64)}, "max", strides=2)
    x = _inception(x, "inception_4a", {3: (96, 192), 5: (32, 64), 1: 256}, "l2", pool_proj=128)
    x = _inception(x, "inception_4e", {3: (160, 256), 5: (64, 128)}, "max", strides=2)
    x = _inception(x, "inception_5a", {3: (96, 384), 1: 256}, "l2", pool_proj=96)
    x = _inception(x, "inception_5b", {3: (96, 384), 1: 256}, "max", pool_proj=96)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(embedding_size, name="dense")(x)
    outputs = layers.UnitNormalization(name="embeddings")(x)
    return keras.Model(inputs, outputs, name=name)
