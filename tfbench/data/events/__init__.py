"""N-MNIST and DVS128 Gesture: event-camera recordings as frames ``[T, 2, H, W]``, read through SpikingJelly 2.0.

One module per stage, in the order a first run goes through them:

    specs.py       the two sensors and their files, SpikingJelly's folder names (plain data, no torch)
    archives.py    the fetched archives: checked, extracted, their formats checked, converted to event arrays
    frames.py      the frame cache (SpikingJelly integrates T frames per sample) and the dataset over it
    synthetic.py   random event frames of a sensor's shape, for runs without the files
    progress.py    stage lines for the slow first-time work

Neither dataset may be downloaded automatically (licences): the user fetches the archives. Every
folder is SpikingJelly's own layout, one folder per dataset under the data root:

    <root>/N-MNIST/download/Train.zip, Test.zip                 what the user fetches
    <root>/N-MNIST/extract/Train/<digit>/<id>.bin, Test/...     the archives extracted (or put there by hand)
    <root>/DvsGesture/download/DvsGesture.tar.gz                what the user fetches
    <root>/DvsGesture/extract/DvsGesture/userXX_<lighting>.aedat, userXX_<lighting>_labels.csv,
                                         trials_to_train.txt, trials_to_test.txt
    <root>/<dataset>/events_np/{train,test}/<class>/*.npz       events as arrays (SpikingJelly converts)
    <root>/<dataset>/frames_number_<T>_split_by_<s>/{train,test}/<class>/*.npz
                                                                the frame cache, one per (T, split_by)

Frames are event counts per pixel, polarity and time bin: float32 ``[T, 2, H, W]``, channel 0 the OFF
events (polarity 0) and channel 1 the ON events, as SpikingJelly integrates them.
"""
