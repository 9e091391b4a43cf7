"""Classifier accuracy scores of a conditional generator: GAN-test and CAS.

    overall, per_class = cas.gan_test(real_classifier, generated_images, generated_labels, class_names)
    overall, per_class = cas.classification_accuracy_score(generated_images, generated_labels,
                                                           (test_images, test_labels), class_names, settings)

- GAN-test (Shmelkov et al. 2018, "How good is my GAN?"): a classifier trained on the real train
  split, scored on generated images, the label being the class asked for. Per class: the share of
  that class's images classified as it; overall: the mean over classes. It says whether the images
  look like their class, and rewards one typical picture per class as much as a varied set.
- CAS, the Classification Accuracy Score (Ravuri & Vinyals 2019): a classifier of the same
  architecture and training recipe trained on generated images ONLY (labels = the class asked for),
  scored on the real test split. Per class: that class's test images classified as it; overall:
  accuracy over the test split, as the real classifier's test accuracy is computed, so that the two
  compare. A generator that draws one picture per class teaches a classifier little about the real
  variety of a class, and CAS drops; CAS ≈ the real classifier's test accuracy means the generated
  set is as good a training set as the real one.
"""

import time

from absl import logging
import numpy as np

from cgan.evaluation.metrics import classifier as classifier_lib


def gan_test(classifier, images, labels, class_names):
    """GAN-test: a real-trained classifier's accuracy on generated images.

    Args:
        classifier: cgan.evaluation.metrics.classifier.Classifier trained on real images.
        images: [N, R, R, 3] uint8 generated images.
        labels: [N] int, the class each was generated for.
        class_names: label names, index i naming label i.

    Returns:
        (mean over the classes present, {class name: accuracy}).
    """
    per_class = classifier.accuracy_per_class(images, labels, class_names)
    return float(np.mean(list(per_class.values()))), per_class


def classification_accuracy_score(images, labels, test, class_names, settings):
    """CAS: trains a classifier on generated images only and scores it on real test images.

    Args:
        images: [N, R, R, 3] uint8 generated images (the training set).
        labels: [N] int, the class each was generated for.
        test: (images [M, R, R, 3] uint8, labels [M] int) of the real test split.
        class_names: label names, index i naming label i.
        settings: the ClassifierSettings of the real-trained classifier it is compared with.

    Returns:
        (accuracy over the test split, {class name: accuracy on that class's test images}).
    """
    start = time.perf_counter()
    model = classifier_lib.train_classifier(images, np.asarray(labels), len(class_names), settings)
    trained = classifier_lib.Classifier(model, {})
    test_images, test_labels = test
    predictions = trained.predict(test_images)
    overall = float(np.mean(predictions == np.asarray(test_labels)))
    logging.info("CAS classifier: trained on %d generated images in %.1f s, %.3f on the real test split",
                 len(images), time.perf_counter() - start, overall)
    return overall, classifier_lib.accuracy_per_class(predictions, test_labels, class_names)
